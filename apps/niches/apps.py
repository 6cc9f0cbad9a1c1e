from django.apps import AppConfig


class NichesConfig(AppConfig):
    name = "apps.niches"
    label = "niches"
    verbose_name = "Niche intelligence"
