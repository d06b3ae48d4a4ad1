"""Settings: embedded defaults, production values, and one-line errors that name the variable."""
from __future__ import annotations

import stat

import pytest

from reagenda.settings import SettingsError, load, mask_url


def test_embedded_defaults(tmp_path):
    s = load({"REAGENDA_VAR_DIR": str(tmp_path / "var")})
    assert s.database_url == f"sqlite:///{tmp_path / 'var' / 'reagenda.db'}"
    assert s.redis_url is None and s.email_backend == "outbox" and s.port == 8000
    assert s.base_url == "http://localhost:8000"
    key_file = tmp_path / "var" / "secret_key"
    assert key_file.read_text() == s.secret_key and len(s.secret_key) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load({"REAGENDA_VAR_DIR": str(tmp_path / "var")}).secret_key == s.secret_key, "kept, not regenerated"


def test_production_values(tmp_path):
    s = load({"REAGENDA_VAR_DIR": str(tmp_path), "DATABASE_URL": "postgres://u:p@db:5432/reagenda",
              "REDIS_URL": "redis://cache:6379/2", "SECRET_KEY": "x" * 40, "BASE_URL": "https://r.example.com/",
              "PORT": "9000", "EMAIL_BACKEND": "SendGrid", "SENDGRID_API_KEY": "SG.abc"})
    assert s.database_url == "postgresql+psycopg://u:p@db:5432/reagenda"
    assert s.redis_url == "redis://cache:6379/2" and s.port == 9000
    assert s.base_url == "https://r.example.com" and s.email_backend == "sendgrid"
    assert not (tmp_path / "secret_key").exists(), "no generated secret when SECRET_KEY is given"


@pytest.mark.parametrize("env, expected", [
    ({"PORT": "abc"}, "PORT='abc' is not a whole number"),
    ({"PORT": "70000"}, "PORT=70000 is out of range"),
    ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL has an unsupported scheme 'mysql'"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL has an unsupported scheme"),
    ({"BASE_URL": "example.com"}, "BASE_URL='example.com' is not an absolute URL"),
    ({"EMAIL_BACKEND": "pigeon"}, "EMAIL_BACKEND='pigeon' is not one of outbox, sendgrid, smtp"),
    ({"EMAIL_BACKEND": "sendgrid"}, "SENDGRID_API_KEY is required when EMAIL_BACKEND=sendgrid"),
    ({"EMAIL_BACKEND": "smtp"}, "SMTP_URL is required when EMAIL_BACKEND=smtp"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY is too short"),
])
def test_bad_values_name_the_variable(tmp_path, env, expected):
    with pytest.raises(SettingsError) as err:
        load({"REAGENDA_VAR_DIR": str(tmp_path), **env})
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_settings_are_frozen(tmp_path):
    s = load({"REAGENDA_VAR_DIR": str(tmp_path)})
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


def test_mask_url_hides_passwords():
    assert mask_url("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("sqlite:///var/x.db") == "sqlite:///var/x.db"
