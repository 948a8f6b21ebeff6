"""Events the notifier publishes on ``mrm.notifications.v1``."""

from __future__ import annotations

import uuid
from typing import Literal

from shared import topics
from shared.events.envelope import EventData, Identifier, LongText, ShortText, Text, Version

DeliveryChannel = Literal["email", "webhook"]


class _NotificationEvent(EventData):
    topic = topics.NOTIFICATIONS
    key_field = "recipient"

    notification_id: Identifier
    recipient: Identifier
    channel: DeliveryChannel
    subject: Text
    body: LongText
    cause_event_id: uuid.UUID
    cause_event_type: ShortText
    attempts: Version


class NotificationDelivered(_NotificationEvent):
    """A notification reached its recipient's channel."""

    event_type = "notification.delivered"


class NotificationFailed(_NotificationEvent):
    """A notification could not be delivered after all retries."""

    event_type = "notification.failed"

    error: Text


NOTIFICATION_EVENTS: tuple[type[EventData], ...] = (NotificationDelivered, NotificationFailed)
