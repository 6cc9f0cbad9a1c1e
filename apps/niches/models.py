"""Niche intelligence. The five niches are shared reference data (not organization-owned)."""

from django.db import models


class NicheSlug(models.TextChoices):
    FITNESS = "fitness", "Fitness studio"
    MED_SPA = "med_spa", "Med spa"
    REAL_ESTATE = "real_estate", "Real estate"
    CONSULTANT = "consultant", "Consultant"
    LOCAL_SERVICE = "local_service", "Local service"


class Niche(models.Model):
    slug = models.CharField(max_length=32, unique=True, choices=NicheSlug.choices)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
