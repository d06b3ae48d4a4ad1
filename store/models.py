"""The domain tables. Times are UTC (``UTCDateTime``); money is integer cents with a currency code.

``Step`` is the durable timer table that drives every workflow; ``Message`` records every message planned or sent
with the idempotency key that stops a retried job from sending twice.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from store.types import UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Owner(Base):
    """A business (freelancer, clinic, salon) whose calendars Reagenda watches."""

    __tablename__ = "owners"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    business_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(300))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str] = mapped_column(String(8), default="es")
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)  # overrides of workflows.policy.Policy defaults
    invoice_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    # Issue 6 (web): settings that are not policy numbers: working hours, sender identity, channels, message
    # texts per kind and language ({"texts": {"es": {"reminder": "..."}}}, ...).
    preferences: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


class CalendarConnection(Base):
    """One account at one provider (a Google login, a Microsoft mailbox, a CalDAV server + user)."""

    __tablename__ = "calendar_connections"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(32))  # registry key in connectors/
    account: Mapped[str] = mapped_column(String(320), default="")
    credentials: Mapped[str] = mapped_column(Text, default="")  # Fernet-encrypted JSON
    status: Mapped[str] = mapped_column(String(32), default="ok")  # ok | needs_reconnect | error
    status_detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class Calendar(Base):
    __tablename__ = "calendars"
    __table_args__ = (UniqueConstraint("connection_id", "external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("calendar_connections.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(1000))
    name: Mapped[str] = mapped_column(String(300), default="")
    watched: Mapped[bool] = mapped_column(Boolean, default=True)
    receives_bookings: Mapped[bool] = mapped_column(Boolean, default=False)
    cursor: Mapped[str | None] = mapped_column(Text)  # provider sync token / deltaLink; NULL = full sync next
    last_synced_at: Mapped[datetime | None]
    # Issue 3 (sync): backoff after provider faults, the last fault in words, and how far ahead the last full
    # sync expanded recurring series (when the rolling horizon has moved past it, the next sync is a full one).
    sync_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    sync_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    horizon_end: Mapped[datetime | None] = mapped_column(default=None)


class Client(Base):
    """A person who books with an owner. Clients never log in; they get messages and one-click links."""

    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("owner_id", "email"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    timezone: Mapped[str | None] = mapped_column(String(64))  # None: the owner's zone
    locale: Mapped[str | None] = mapped_column(String(8))  # None: the owner's language
    preferred_channel: Mapped[str] = mapped_column(String(16), default="email")
    opted_out: Mapped[list[Any]] = mapped_column(default=list)  # channels the client unsubscribed from
    state: Mapped[str] = mapped_column(String(16), default="active")  # active | ghosting | closed
    created_at: Mapped[datetime]
    # Issue 5 (channels): what the email provider told us about the address: ok | bounced | dropped | spam.
    # Anything but "ok" means no more email to it until the owner fixes the address.
    email_status: Mapped[str] = mapped_column(String(16), default="ok", server_default="ok")
    # Issue 4 (workflows): when the ghosting sequence started / the file was closed, and the stricter-policy
    # overrides a repeat offender gets (merged over the owner's policy when an appointment is first seen).
    ghost_started_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    policy_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


class Appointment(Base):
    """One occurrence of a calendar event with a client. ``policy`` is the owner's policy as it was when the
    appointment was first seen, so a later policy change never rewrites a past promise."""

    __tablename__ = "appointments"
    __table_args__ = (UniqueConstraint("calendar_id", "external_uid", "recurrence_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    calendar_id: Mapped[int | None] = mapped_column(ForeignKey("calendars.id", ondelete="SET NULL"), index=True)
    external_uid: Mapped[str] = mapped_column(String(1000))
    recurrence_id: Mapped[str] = mapped_column(String(64), default="")
    title: Mapped[str] = mapped_column(String(500), default="")
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    location: Mapped[str] = mapped_column(Text, default="")
    meeting_link: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(24), default="scheduled")  # scheduled | cancelled | done
    confirmation: Mapped[str] = mapped_column(String(16), default="pending")  # pending | confirmed
    attendance: Mapped[str] = mapped_column(String(16), default="unknown")  # unknown | arrived | no_show
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # When the current start time was first seen: reminders whose moment had already passed by then were
    # "booked inside the window" and go out at once instead of being skipped.
    start_seen_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Issue 4 (workflows): the facts the flows and the client history are computed from.
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_by: Mapped[str] = mapped_column(String(16), default="", server_default="")  # calendar|client|owner
    late_cancel: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    move_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    late_move_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    attendance_at: Mapped[datetime | None] = mapped_column(default=None)  # when arrived/not-yet/no-show was set
    # Issue 3 (sync): what the calendar last said about this occurrence: active | cancelled | declined | gone.
    # Only a cancellation that came from the calendar is undone when the event comes back ("restored").
    calendar_state: Mapped[str] = mapped_column(String(16), default="active", server_default="active")

    client: Mapped[Client] = relationship(lazy="joined")
    owner: Mapped[Owner] = relationship(lazy="joined")


class Step(Base):
    """A durable timer: something that should happen to a subject at ``due_at``.

    States: pending → queued (dispatcher put it on RQ) → running (a worker claimed it) → done | skipped | failed;
    cancelled when re-planning makes it obsolete. ``idempotency_key`` is unique: planning the same step twice is a
    no-op, and the message it sends carries the same key.
    """

    __tablename__ = "steps"
    __table_args__ = (Index("ix_steps_state_due", "state", "due_at"), Index("ix_steps_subject", "subject_type", "subject_id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(48))
    subject_type: Mapped[str] = mapped_column(String(16))  # appointment | client
    subject_id: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    claimed_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(Text, default="")  # why it was skipped / how it failed / what it did
    # The RQ job carrying the step since it was queued (one job carries a batch); the reconciler checks it.
    job_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]


class Message(Base):
    """Every message planned or sent. The row (with its unique idempotency key) is committed before the channel
    is called, so a retried job finds it and never sends twice what the provider already accepted."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"), index=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"), index=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("steps.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(48))
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(320))
    locale: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str] = mapped_column(String(220), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sending | sent | failed
    provider_id: Mapped[str] = mapped_column(String(200), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Reply(Base):
    """Anything a client said back: an email reply or a one-click answer."""

    __tablename__ = "replies"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(16))  # email | link | sms | whatsapp
    sender: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    raw_text: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")  # quoted history and signature stripped
    intent: Mapped[str] = mapped_column(String(24), default="other")
    auto_reply: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_owner: Mapped[bool] = mapped_column(Boolean, default=True)
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    received_at: Mapped[datetime]


class LedgerEntry(Base):
    """Money facts: deposits taken, fees owed, waivers (with reason), carry-overs, payments, invoices."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(24))  # deposit | fee | waiver | carry_over | payment | invoice
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    reason: Mapped[str] = mapped_column(Text, default="")
    invoice_number: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]


class AppointmentType(Base):
    """What a client can book from an owner's public page: its length, buffers and where it happens.

    ``meeting``: "conference" asks the calendar provider for a Meet / Teams link, "fixed" uses the owner's fixed
    link (``BookingSettings.meeting_link``), "none" is in person (``location``)."""

    __tablename__ = "appointment_types"
    __table_args__ = (UniqueConstraint("owner_id", "slug"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    duration_minutes: Mapped[int] = mapped_column(Integer, default=60)
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, default=0)
    location: Mapped[str] = mapped_column(Text, default="")
    meeting: Mapped[str] = mapped_column(String(16), default="conference")  # conference | fixed | none
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class BookingSettings(Base):
    """An owner's public booking page and bookable time (``rules``: see ``workflows.availability.BookingRules``)."""

    __tablename__ = "booking_settings"
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)  # /book/<slug>/<type>
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    meeting_link: Mapped[str] = mapped_column(Text, default="")  # the owner's fixed video link, if any
    updated_at: Mapped[datetime]


class SlotHold(Base):
    """A slot being booked right now. Inserted under the owner's lock before the calendar is written, in the same
    transaction as the overlap check, so concurrent requests for one slot produce exactly one booking; the
    UNIQUE(owner_id, starts_at) constraint is the last line of defence. Deleted once the appointment is recorded
    or the calendar write fails; ``expires_at`` frees a hold left by a crashed process."""

    __tablename__ = "slot_holds"
    __table_args__ = (UniqueConstraint("owner_id", "starts_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]  # including buffers
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]


class InboundEvent(Base):
    """Issue 5: every inbound email and provider event, once. ``dedup_key`` (the email's Message-ID, SendGrid's
    ``sg_event_id``) makes a webhook delivered twice count once; mail that matched nobody is kept here for the owner
    (``status`` unmatched) instead of being dropped."""

    __tablename__ = "inbound_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(24))  # sendgrid_parse | imap | sendgrid_event | cli
    dedup_key: Mapped[str] = mapped_column(String(300), unique=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    reply_id: Mapped[int | None] = mapped_column(ForeignKey("replies.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16))  # reply | auto_reply | unmatched | bounce | opt_out | ignored
    sender: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="")  # stripped text, or the provider's reason
    received_at: Mapped[datetime]


class PushChannel(Base):
    """A provider push registration for one calendar: a Google events.watch channel or a Graph subscription.

    ``secret`` (Fernet-encrypted) is the channel token / clientState every notification must echo; ``expires_at``
    drives renewal before the provider drops the channel (issue 3, web/push.py and workflows/push_renewal.py)."""

    __tablename__ = "push_channels"
    id: Mapped[int] = mapped_column(primary_key=True)
    calendar_id: Mapped[int] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(200), unique=True)  # Google channel id / Graph subscription id
    resource_id: Mapped[str] = mapped_column(String(1000), default="")
    secret: Mapped[str] = mapped_column(Text)
    callback_url: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | renew | removed
    expires_at: Mapped[datetime]
    last_notified_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
