from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "apps.conversations"
    label = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from apps.conversations.services import escalation_event_hook
        from apps.conversations.timeline import message_entries
        from apps.crm.timeline import register_timeline_provider
        from apps.events.services import on_event_emitted

        register_timeline_provider(message_entries)
        on_event_emitted(escalation_event_hook)
