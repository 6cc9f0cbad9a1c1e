from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "apps.events"
    label = "events"
    verbose_name = "Events and webhooks"

    def ready(self) -> None:
        from apps.core.metrics import register_scrape_collector
        from apps.events import metrics, services

        services.on_event_emitted(services.schedule_dispatch)
        register_scrape_collector(metrics.OutboxCollector())
