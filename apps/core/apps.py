from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from apps.core import openapi, tracing  # noqa: F401 - registers the auth extension

        tracing.connect_celery_signals()
