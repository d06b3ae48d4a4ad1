"""Spanish and English: the committed catalog is complete and compiled, and the language follows the owner's
setting, then ?lang=, then the browser's Accept-Language."""
from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.web_fixtures import post_form, sign_up, web_app, web_client  # noqa: F401
from web.i18n import TRANSLATIONS

WEB = Path(__file__).resolve().parent.parent / "web"
PO = TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.po"


def _catalog():  # type: ignore[no-untyped-def]
    with PO.open("rb") as fh:
        return read_po(fh)


def test_every_string_in_the_owner_pages_has_a_spanish_translation():
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    found = {msg for _file, _line, msg, _comments, _ctx in
             extract_from_dir(str(WEB), method_map, keywords=keywords)}
    catalog = _catalog()
    missing = [m for m in found if not (catalog.get(m if isinstance(m, str) else m[0]) or None)
               or not catalog.get(m if isinstance(m, str) else m[0]).string]
    assert missing == [], f"add Spanish for these to {PO} and recompile (web.i18n.compile_catalogs): {missing}"


def test_committed_mo_matches_the_po():
    """What the compiled catalog says, not its bytes: Babel releases lay out the same .mo differently."""
    def entries(catalog):  # type: ignore[no-untyped-def]
        as_key = lambda v: v if isinstance(v, str) else tuple(v)  # noqa: E731 - plural forms are lists
        return {as_key(m.id): as_key(m.string) for m in catalog if m.id and m.string and not m.fuzzy}

    with PO.with_suffix(".mo").open("rb") as fh:
        compiled = entries(read_mo(fh))
    assert compiled == entries(_catalog()), \
        "messages.mo is stale: run `python -c 'from web.i18n import compile_catalogs; compile_catalogs()'`"


def test_language_from_accept_language_then_choice_then_owner(web_client):  # type: ignore[no-untyped-def]
    assert "Iniciar sesión" in web_client.get("/login", headers={"Accept-Language": "es-MX,es;q=0.9"}).get_data(True)
    assert "Sign in" in web_client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(True)
    assert 'lang="es"' in web_client.get("/login", headers={"Accept-Language": "fr"}).get_data(True)  # default
    assert "Sign in" in web_client.get("/login?lang=en", headers={"Accept-Language": "es"}).get_data(True)
    assert "Sign in" in web_client.get("/login", headers={"Accept-Language": "es"}).get_data(True)  # remembered
    sign_up(web_client, "ana@example.com", locale="es")
    body = web_client.get("/", headers={"Accept-Language": "en"}).get_data(True)
    assert "Citas" in body and "Aún no hay citas" in body  # the owner's setting wins


def test_spanish_dates_and_money_in_the_owner_zone(web_client, stack):  # type: ignore[no-untyped-def]
    sign_up(web_client, "ana@example.com", locale="es")
    body = web_client.get("/ledger").get_data(True)
    assert "0,00" in body and "€" in body
    body = web_client.get("/insights").get_data(True)
    assert "<svg" in body and "Motivos de cancelación" in body
