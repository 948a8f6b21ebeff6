"""Channel adapters against real servers, and the same contract checked on the fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from notifier_testkit import FakeEmailSender, FakeWebhookSender, SmtpServer, WebhookReceiver
from standardwebhooks import Webhook

from services.notifier.senders import (
    NOTIFICATION_ID_HEADER,
    DeliveryError,
    EmailSender,
    HttpWebhookSender,
    SmtpEmailSender,
    WebhookSender,
    webhook_key,
)
from shared.embedded import free_port

pytestmark = pytest.mark.integration


@dataclass
class EmailChannel:
    sender: EmailSender
    received: Callable[[], list[tuple[str, str, str]]]  # (to, subject, body)


@dataclass
class WebhookChannel:
    sender: WebhookSender
    url: str
    received: Callable[[], list[tuple[str, dict]]]  # (notification id, document)


@pytest.fixture(params=["fake", "real"])
def email_channel(request: pytest.FixtureRequest, smtp_server: SmtpServer) -> EmailChannel:
    if request.param == "fake":
        fake = FakeEmailSender()
        return EmailChannel(
            sender=fake, received=lambda: [(m["to"], m["subject"], m["body"]) for m in fake.sent]
        )
    real = SmtpEmailSender(host=smtp_server.host, port=smtp_server.port, sender="mrm@example.com")
    return EmailChannel(
        sender=real,
        received=lambda: [
            (
                m.rcpt_tos[0],
                m.message["Subject"],
                m.message.get_content().replace("\r\n", "\n").rstrip("\n"),
            )
            for m in smtp_server.messages
        ],
    )


@pytest.fixture(params=["fake", "real"])
async def webhook_channel(
    request: pytest.FixtureRequest, webhook_receiver: WebhookReceiver
) -> AsyncIterator[WebhookChannel]:
    if request.param == "fake":
        fake = FakeWebhookSender()
        yield WebhookChannel(
            sender=fake,
            url="http://fake/hook",
            received=lambda: [(p["id"], p["payload"]) for p in fake.posted],
        )
        return
    async with httpx.AsyncClient(timeout=5) as client:
        yield WebhookChannel(
            sender=HttpWebhookSender(client=client, secret="s", allow_private=True),
            url=f"{webhook_receiver.base_url}/hook",
            received=lambda: [
                (p.headers[NOTIFICATION_ID_HEADER], p.json()) for p in webhook_receiver.received()
            ],
        )


async def test_email_contract(email_channel: EmailChannel) -> None:
    await email_channel.sender.send_email(
        to="bob@example.com",
        subject="Überfällig: stage",
        body="Hello Bob,\nline 2",
        message_id="n1",
    )
    assert email_channel.received() == [
        ("bob@example.com", "Überfällig: stage", "Hello Bob,\nline 2")
    ]


async def test_webhook_contract(webhook_channel: WebhookChannel) -> None:
    document = {"notification_id": "n1", "subject": "s", "body": "b", "attempt": 1}
    await webhook_channel.sender.post_json(
        url=webhook_channel.url, payload=document, notification_id="n1"
    )
    assert webhook_channel.received() == [("n1", document)]


async def test_smtp_down_is_a_transient_error() -> None:
    sender = SmtpEmailSender(host="127.0.0.1", port=free_port(), sender="m@x.org", timeout_s=2)
    with pytest.raises(DeliveryError) as caught:
        await sender.send_email(to="a@b.org", subject="s", body="b", message_id="n1")
    assert not caught.value.permanent


@pytest.mark.parametrize(("status", "permanent"), [(503, False), (429, False), (404, True)])
async def test_webhook_errors_are_classified(
    webhook_receiver: WebhookReceiver, status: int, permanent: bool
) -> None:
    webhook_receiver.fail("/hook", status)
    async with httpx.AsyncClient(timeout=5) as client:
        sender = HttpWebhookSender(client=client, secret="topsecret", allow_private=True)
        with pytest.raises(DeliveryError) as caught:
            await sender.post_json(
                url=f"{webhook_receiver.base_url}/hook", payload={"a": 1}, notification_id="n1"
            )
    assert caught.value.permanent is permanent
    assert f"HTTP {status}" in caught.value.reason
    (post,) = webhook_receiver.received()
    assert Webhook(webhook_key("topsecret")).verify(post.body, post.headers) == {"a": 1}


async def test_webhook_unreachable_is_a_transient_error() -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        sender = HttpWebhookSender(client=client, allow_private=True)
        with pytest.raises(DeliveryError) as caught:
            await sender.post_json(
                url=f"http://127.0.0.1:{free_port()}/hook", payload={}, notification_id="n1"
            )
    assert not caught.value.permanent
