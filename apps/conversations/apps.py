from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "apps.conversations"
    label = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from apps.conversations.timeline import message_entries
        from apps.crm.timeline import register_timeline_provider

        register_timeline_provider(message_entries)
