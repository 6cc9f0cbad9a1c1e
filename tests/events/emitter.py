"""`python -m tests.events.emitter ORGANIZATION_ID COUNT`: emit COUNT events, one
transaction each, like services do; used to emit while the broker is down."""

import os
import sys
import uuid


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.events.worker_settings")
    django.setup()
    from django.db import transaction

    from apps.events.services import emit
    from apps.tenancy.models import Organization

    organization = Organization.objects.get(pk=sys.argv[1])
    for _ in range(int(sys.argv[2])):
        contact_id = str(uuid.uuid4())
        with transaction.atomic():
            emit(
                organization=organization,
                type="contact.created",
                subject_type="contact",
                subject_id=contact_id,
                data={"contact_id": contact_id},
            )
    sys.stdout.write("emitted\n")


if __name__ == "__main__":
    main()
