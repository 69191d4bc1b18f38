"""Tortoise models and the domain rules that change them, one module per domain."""

MODEL_MODULES = ["models.org", "models.messaging", "models.audit", "models.webchat",
                 "models.hazard", "models.dialog", "models.escalation", "models.schedule",
                 "models.emergency", "models.chats"]
