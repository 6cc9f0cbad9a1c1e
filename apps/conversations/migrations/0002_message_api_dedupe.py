from django.db import migrations


class Migration(migrations.Migration):
    """Dedupe for messages without a channel connection (`POST /api/v1/messages/inbound/`):
    one message per (organization, channel, provider id). Webhook messages are covered by
    `message_provider_id_per_channel`."""

    dependencies = [("conversations", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE UNIQUE INDEX IF NOT EXISTS message_provider_id_api "
            "ON conversations_message (organization_id, channel, provider_message_id) "
            "WHERE channel_connection_id IS NULL AND provider_message_id IS NOT NULL",
            "DROP INDEX IF EXISTS message_provider_id_api",
        )
    ]
