from apps.core.errors import NotFound
from apps.niches.models import Niche


def niche_get_by_slug(*, slug: str) -> Niche:
    try:
        return Niche.objects.get(slug=slug)
    except Niche.DoesNotExist:
        raise NotFound(f"Unknown niche {slug!r}.", code="unknown_niche") from None
