"""Events the notifier publishes on ``mrm.notifications.v1``."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from shared import topics
from shared.events.envelope import EventData, Identifier

DeliveryChannel = Literal["email", "webhook"]


class _NotificationEvent(EventData):
    topic = topics.NOTIFICATIONS
    key_field = "recipient"

    notification_id: Identifier
    recipient: Identifier
    channel: DeliveryChannel
    subject: str
    body: str
    cause_event_id: uuid.UUID
    cause_event_type: str
    attempts: int = Field(ge=1)


class NotificationDelivered(_NotificationEvent):
    """A notification reached its recipient's channel."""

    event_type = "notification.delivered"


class NotificationFailed(_NotificationEvent):
    """A notification could not be delivered after all retries."""

    event_type = "notification.failed"

    error: str


NOTIFICATION_EVENTS: tuple[type[EventData], ...] = (NotificationDelivered, NotificationFailed)
