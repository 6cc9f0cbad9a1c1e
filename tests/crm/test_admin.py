"""The CRM console: scoping of every admin, writes through services, timeline, merge."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.crm import services
from apps.crm.models import (
    Company,
    Contact,
    ContactConsent,
    ContactIdentity,
    Deal,
    DealStageChange,
    Lead,
    Note,
    Pipeline,
    Stage,
    Task,
)
from tests.crm import factories as f

pytestmark = pytest.mark.django_db


def _world(org, tag):
    company = services.company_create(
        organization=org, name=f"{tag}-company", domain=f"{tag}.example"
    )
    contact = f.contact(org, name=f"{tag}-contact", email=f"{tag}@example.com", company=company)
    services.contact_set_consent(
        organization=org, contact=contact, channel="sms", opted_in=False, reason=f"{tag}-reason"
    )
    lead = f.lead(org, contact=contact, campaign=f"{tag}-campaign")
    deal = f.deal(org, contact=contact, title=f"{tag}-deal", amount=100)
    task = services.task_create(organization=org, title=f"{tag}-task", contact=contact, deal=deal)
    note = services.note_create(organization=org, contact=contact, body=f"{tag}-note")
    return {
        "company": company,
        "contact": contact,
        "contactidentity": contact.identities.get(),
        "contactconsent": contact.consents.get(),
        "lead": lead,
        "deal": deal,
        "pipeline": deal.pipeline,
        "stage": deal.stage,
        "dealstagechange": deal.stage_changes.get(),
        "task": task,
        "note": note,
    }


@pytest.fixture
def world(organization, other_organization, make_staff_client):
    services.pipeline_create(organization=other_organization, name="theirs-pipeline")
    services.pipeline_create(organization=organization, name="mine-pipeline")
    mine = _world(organization, "mine")
    theirs = _world(other_organization, "theirs")
    make_staff_client(other_organization, role="admin", email="boss@harbor.example")
    return {
        "mine": mine,
        "theirs": theirs,
        "admin": make_staff_client(organization, role="admin"),
        "operator": make_staff_client(organization, role="operator"),
        "user": make_staff_client(organization, role="user"),
    }


CHANGELISTS = {
    "company": ("mine-company", "theirs-company"),
    "contact": ("mine-contact", "theirs-contact"),
    "contactidentity": ("mine@example.com", "theirs@example.com"),
    "contactconsent": ("mine-reason", "theirs-reason"),
    "lead": ("mine-campaign", "theirs-campaign"),
    "pipeline": ("mine-pipeline", "theirs-pipeline"),
    "stage": ("mine-pipeline", "theirs-pipeline"),
    "deal": ("mine-deal", "theirs-deal"),
    "dealstagechange": ("mine-deal", "theirs-deal"),
    "task": ("mine-task", "theirs-task"),
    "note": ("mine-note", "theirs-note"),
}


@pytest.mark.parametrize("model", list(CHANGELISTS))
def test_changelists_show_only_my_organization(world, model):
    mine, theirs = CHANGELISTS[model]
    if model == "stage":
        services.stage_save(
            organization=world["mine"]["pipeline"].organization,
            pipeline=Pipeline.objects.get(name="mine-pipeline"),
            data={"name": "mine stage"},
        )
    response = world["admin"].get(f"/admin/crm/{model}/")
    assert response.status_code == 200
    body = response.content.decode()
    if model != "stage":
        assert mine in body
    assert theirs not in body
    assert {o.organization_id for o in response.context["cl"].result_list} == {
        world["mine"]["contact"].organization_id
    }


@pytest.mark.parametrize("model", list(CHANGELISTS))
def test_foreign_rows_cannot_be_opened_by_guessing_urls(world, model):
    obj = world["theirs"][model]
    for action in ("change", "delete"):
        response = world["admin"].get(f"/admin/crm/{model}/{obj.pk}/{action}/", follow=True)
        assert "theirs-" not in response.content.decode()
        if response.status_code == 403:  # read-only admins refuse every delete page
            continue
        assert response.redirect_chain and response.redirect_chain[-1][0] == "/admin/"


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("contact", "owner"),
        ("contact", "company"),
        ("deal", "pipeline"),
        ("deal", "stage"),
        ("deal", "owner"),
        ("task", "assignee"),
        ("stage", "pipeline"),
        ("lead", "owner"),
    ],
)
def test_foreign_key_choices_are_mine(world, model, field):
    response = world["admin"].get(f"/admin/crm/{model}/add/")
    assert response.status_code == 200
    queryset = response.context["adminform"].form.fields[field].queryset
    theirs_org = world["theirs"]["contact"].organization_id
    if hasattr(queryset.model, "organization_id"):
        assert not queryset.filter(organization_id=theirs_org).exists()
    else:  # staff users: members of my organization only
        assert not queryset.filter(email="boss@harbor.example").exists()
        assert queryset.exists()


@pytest.mark.parametrize(
    ("model", "field", "term"),
    [
        ("deal", "contact", "contact"),
        ("contact", "company", "company"),
        ("task", "deal", "deal"),
        ("note", "contact", ""),
        ("lead", "contact", "example.com"),
    ],
)
def test_autocomplete_is_scoped(world, model, field, term):
    response = world["admin"].get(
        "/admin/autocomplete/",
        {"app_label": "crm", "model_name": model, "field_name": field, "term": term},
    )
    assert response.status_code == 200
    texts = [r["text"] for r in response.json()["results"]]
    assert texts and all("theirs" not in t for t in texts)


def test_autocomplete_leaves_out_merged_contacts(world, organization):
    extra = f.contact(organization, name="mine-duplicate", email="dup@example.com")
    services.contact_merge(
        organization=organization, survivor=world["mine"]["contact"], duplicates=[extra]
    )
    response = world["admin"].get(
        "/admin/autocomplete/",
        {"app_label": "crm", "model_name": "deal", "field_name": "contact", "term": "mine"},
    )
    assert [r["text"] for r in response.json()["results"]] == ["mine-contact"]


def test_posting_a_foreign_choice_is_refused(world, organization):
    response = world["admin"].post(
        "/admin/crm/deal/add/",
        {
            "organization": str(organization.pk),
            "title": "sneaky",
            "contact": str(world["theirs"]["contact"].pk),
            "currency": "USD",
            "stage_changes-TOTAL_FORMS": "0",
            "stage_changes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Deal.objects.filter(title="sneaky").exists()


@pytest.mark.parametrize(
    ("model", "action", "check"),
    [
        ("lead", "qualify", lambda w: Lead.objects.get(pk=w["theirs"]["lead"].pk).status == "new"),
        ("lead", "convert", lambda w: Lead.objects.get(pk=w["theirs"]["lead"].pk).deal_id is None),
        (
            "task",
            "complete",
            lambda w: Task.objects.get(pk=w["theirs"]["task"].pk).status == "open",
        ),
        (
            "contact",
            "merge_contacts",
            lambda w: not Contact.objects.filter(merged_into__isnull=False).exists(),
        ),
        (
            "pipeline",
            "make_default",
            lambda w: not Pipeline.objects.filter(name="theirs-pipeline", is_default=True).exists(),
        ),
    ],
)
def test_actions_cannot_touch_foreign_rows(world, model, action, check):
    theirs = (
        world["theirs"][model]
        if model != "pipeline"
        else Pipeline.objects.get(name="theirs-pipeline")
    )
    mine = (
        world["mine"][model] if model != "pipeline" else Pipeline.objects.get(name="mine-pipeline")
    )
    world["admin"].post(
        f"/admin/crm/{model}/",
        {
            "action": action,
            "_selected_action": [str(theirs.pk), str(mine.pk)],
            "apply": "1",
            "survivor": str(mine.pk),
        },
    )
    assert check(world)


def test_lead_actions_go_through_services(world, organization):
    lead = world["mine"]["lead"]
    world["operator"].post(
        "/admin/crm/lead/", {"action": "qualify", "_selected_action": [str(lead.pk)]}
    )
    lead.refresh_from_db()
    assert lead.status == "qualified"
    assert f.events(organization, "lead.qualified")[0].data["changed_by_id"] == str(
        world["operator"].user.pk
    )
    world["operator"].post(
        "/admin/crm/lead/", {"action": "convert", "_selected_action": [str(lead.pk)]}
    )
    lead.refresh_from_db()
    assert lead.status == "converted" and lead.deal is not None


def test_read_only_members_cannot_write(world):
    user = world["user"]
    assert user.get("/admin/crm/contact/").status_code == 200
    assert user.get("/admin/crm/contact/add/").status_code == 403
    lead = world["mine"]["lead"]
    user.post("/admin/crm/lead/", {"action": "qualify", "_selected_action": [str(lead.pk)]})
    lead.refresh_from_db()
    assert lead.status == "new"


def test_operators_cannot_merge_or_edit_pipelines(world):
    operator = world["operator"]
    assert operator.get("/admin/crm/pipeline/add/").status_code == 403
    response = operator.get("/admin/crm/contact/")
    assert "merge_contacts" not in response.content.decode()


def test_superuser_sees_every_organization(world):
    root = get_user_model().objects.create_superuser(email="root@example.com", password="x")
    client = Client()
    client.force_login(root)
    body = client.get("/admin/crm/deal/").content.decode()
    assert "mine-deal" in body and "theirs-deal" in body


def test_staff_without_membership_sees_nothing(world):
    lonely = get_user_model().objects.create_user(
        email="lonely@example.com", password="x", is_staff=True
    )
    client = Client()
    client.force_login(lonely)
    assert client.get("/admin/crm/contact/").status_code == 403
    assert client.get("/admin/pipeline/").status_code == 403


# --- writes through services ----------------------------------------------------------------


def _contact_form(organization, **values):
    return {
        "organization": str(organization.pk),
        "name": "",
        "email": "",
        "phone": "",
        "tags": "",
        "custom_fields": "{}",
        "lifecycle_stage": "lead",
        "source": "",
        "timezone": "",
        "identities-TOTAL_FORMS": "0",
        "identities-INITIAL_FORMS": "0",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        **values,
    }


def test_adding_a_contact_emits_created_and_a_duplicate_opens_the_existing(world, organization):
    admin_client = world["admin"]
    response = admin_client.post(
        "/admin/crm/contact/add/",
        _contact_form(
            organization, name="Maya", email="Maya@New.example", phone="(415) 555-0100", tags="a,b"
        ),
    )
    assert response.status_code == 302, (
        response.context["adminform"].form.errors if response.context else ""
    )
    maya = Contact.objects.get(email="maya@new.example")
    assert maya.phone == "+14155550100" and maya.tags == ["a", "b"]
    assert f.events(organization, "contact.created")[-1].subject_id == str(maya.pk)
    again = admin_client.post(
        "/admin/crm/contact/add/",
        _contact_form(organization, email="maya@new.example", tags="vip"),
        follow=True,
    )
    assert again.redirect_chain[-1][0] == f"/admin/crm/contact/{maya.pk}/change/"
    assert "matched by email" in again.content.decode()
    maya.refresh_from_db()
    assert maya.tags == ["a", "b", "vip"]
    assert Contact.objects.filter(email="maya@new.example").count() == 1


def test_bad_phone_in_the_contact_form_is_a_form_error(world, organization):
    response = world["admin"].post(
        "/admin/crm/contact/add/", _contact_form(organization, phone="12")
    )
    assert response.status_code == 200
    assert "phone" in response.context["adminform"].form.errors


def test_editing_a_contact_goes_through_the_service(world, organization):
    contact = world["mine"]["contact"]
    form = _contact_form(
        organization,
        name="Renamed",
        email="mine@example.com",
        company=str(world["mine"]["company"].pk),
        tags="x",
        **{
            "identities-TOTAL_FORMS": "1",
            "identities-INITIAL_FORMS": "1",
            "consents-TOTAL_FORMS": "1",
            "consents-INITIAL_FORMS": "1",
        },
    )
    form.pop("organization")
    response = world["admin"].post(f"/admin/crm/contact/{contact.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    contact.refresh_from_db()
    assert contact.name == "Renamed" and contact.tags == ["x"]
    assert set(f.events(organization, "contact.updated")[-1].data["changed"]) == {"name", "tags"}


def test_contact_page_shows_the_timeline(world):
    contact = world["mine"]["contact"]
    f.booking(contact)
    response = world["admin"].get(f"/admin/crm/contact/{contact.pk}/change/")
    body = response.content.decode()
    assert response.status_code == 200
    for text in (
        "Timeline",
        "mine-note",
        "Task: mine-task",
        "Deal opened: mine-deal",
        "score 0",
        "Booking: Free trial class",
    ):
        assert text in body, text


def test_merge_action_asks_which_to_keep_then_merges(world, organization):
    keep = world["mine"]["contact"]
    dup = f.contact(organization, name="mine-dup", phone="+14155550111")
    url = "/admin/crm/contact/"
    ids = [str(keep.pk), str(dup.pk)]
    confirm = world["admin"].post(url, {"action": "merge_contacts", "_selected_action": ids})
    assert confirm.status_code == 200 and "Choose the contact to keep" in confirm.content.decode()
    assert not Contact.objects.filter(merged_into__isnull=False).exists()
    done = world["admin"].post(
        url,
        {
            "action": "merge_contacts",
            "_selected_action": ids,
            "apply": "1",
            "survivor": str(keep.pk),
        },
    )
    assert done.status_code == 302 and done["Location"] == f"/admin/crm/contact/{keep.pk}/change/"
    dup.refresh_from_db()
    assert dup.merged_into_id == keep.pk
    assert f.events(organization, "contact.updated")[-1].data["merged_contact_ids"] == [str(dup.pk)]


def test_deal_stage_change_in_the_form_records_who(world, organization):
    deal = world["mine"]["deal"]
    won = Stage.objects.get(pipeline=deal.pipeline, name="Member")
    response = world["operator"].post(
        f"/admin/crm/deal/{deal.pk}/change/",
        {
            "title": deal.title,
            "contact": str(deal.contact_id),
            "stage": str(won.pk),
            "amount": "120",
            "currency": "USD",
            "source": "",
            "lost_reason": "",
            "stage_changes-TOTAL_FORMS": "1",
            "stage_changes-INITIAL_FORMS": "1",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    deal.refresh_from_db()
    assert deal.status == "won" and str(deal.amount) == "120.00"
    change = DealStageChange.objects.filter(deal=deal).latest("created_at")
    assert change.changed_by == world["operator"].user
    assert f.events(organization, "deal.won")


def test_adding_task_note_lead_consent_identity_through_services(world, organization):
    admin_client = world["admin"]
    contact = world["mine"]["contact"]
    org = str(organization.pk)
    assert (
        admin_client.post(
            "/admin/crm/task/add/",
            {"organization": org, "title": "Call", "contact": str(contact.pk)},
        ).status_code
        == 302
    )
    assert f.events(organization, "task.created")[-1].data["title"] == "Call"
    assert Task.objects.get(title="Call").source == "admin"
    assert (
        admin_client.post(
            "/admin/crm/note/add/",
            {"organization": org, "contact": str(contact.pk), "body": "Hello"},
        ).status_code
        == 302
    )
    assert Note.objects.get(body="Hello").author == admin_client.user
    assert (
        admin_client.post(
            "/admin/crm/lead/add/",
            {
                "organization": org,
                "contact": str(contact.pk),
                "answers": "{}",
                "source": "walk-in",
                "campaign": "",
            },
        ).status_code
        == 302
    )
    assert Lead.objects.filter(source="walk-in").exists()
    assert (
        admin_client.post(
            "/admin/crm/contactconsent/add/",
            {
                "organization": org,
                "contact": str(contact.pk),
                "channel": "whatsapp",
                "opted_in": "False",
                "reason": "",
            },
        ).status_code
        == 302
    )
    assert ContactConsent.objects.get(contact=contact, channel="whatsapp").status == "opted_out"
    assert f.events(organization, "contact.opted_out")[-1].data["channel"] == "whatsapp"
    assert (
        admin_client.post(
            "/admin/crm/contactidentity/add/",
            {
                "organization": org,
                "contact": str(contact.pk),
                "kind": "manychat_id",
                "value": " 42 ",
            },
        ).status_code
        == 302
    )
    assert ContactIdentity.objects.filter(contact=contact, kind="manychat_id", value="42").exists()
    assert (
        admin_client.post(
            "/admin/crm/company/add/",
            {"organization": org, "name": "Acme", "domain": "ACME.example"},
        ).status_code
        == 302
    )
    assert Company.objects.get(name="Acme").domain == "acme.example"


def test_database_rules_are_form_errors(world, organization):
    response = world["admin"].post(
        "/admin/crm/company/add/",
        {"organization": str(organization.pk), "name": "Dup", "domain": "mine.example"},
    )
    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert not Company.objects.filter(name="Dup").exists()


def test_a_service_refusal_is_a_message_not_a_500(world, organization):
    other = f.contact(organization, email="other@example.com")
    response = world["admin"].post(
        "/admin/crm/contactidentity/add/",
        {
            "organization": str(organization.pk),
            "contact": str(other.pk),
            "kind": "email",
            "value": "MINE@example.com",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert "identifies another contact" in response.content.decode()
    assert not ContactIdentity.objects.filter(
        contact=other, kind="email", value="mine@example.com"
    ).exists()


def test_pipeline_stages_edit_inline(world, organization):
    pipeline = Pipeline.objects.get(name="mine-pipeline")
    response = world["admin"].post(
        f"/admin/crm/pipeline/{pipeline.pk}/change/",
        {
            "name": "mine-pipeline",
            "niche": "",
            "stages-TOTAL_FORMS": "2",
            "stages-INITIAL_FORMS": "0",
            "stages-0-order": "1",
            "stages-0-name": "Pitch",
            "stages-0-probability": "20",
            "stages-0-max_idle_days": "",
            "stages-1-order": "2",
            "stages-1-name": "Signed",
            "stages-1-probability": "100",
            "stages-1-is_won": "on",
            "stages-1-max_idle_days": "",
        },
    )
    assert response.status_code == 302, (
        response.context and response.context["adminform"].form.errors
    )
    assert list(pipeline.stages.order_by("order").values_list("name", "organization_id")) == [
        ("Pitch", organization.pk),
        ("Signed", organization.pk),
    ]


def test_contact_changelist_query_count_is_flat(world, organization, member):
    admin_client = world["admin"]

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get("/admin/crm/contact/").status_code == 200
        return len(ctx.captured_queries)

    admin_client.get("/admin/crm/contact/")
    few = count()
    for i in range(15):
        f.contact(organization, owner=member, tags=[f"t{i}"], company=world["mine"]["company"])
    assert count() == few


def test_removing_a_custom_field_in_the_form_removes_it(world, organization):
    contact = world["mine"]["contact"]
    services.contact_update(
        organization=organization, contact=contact, data={"custom_fields": {"a": 1, "b": 2}}
    )
    form = _contact_form(
        organization,
        name=contact.name,
        email=contact.email,
        company=str(world["mine"]["company"].pk),
        custom_fields='{"a": 1, "c": 3}',
        **{
            "identities-TOTAL_FORMS": "1",
            "identities-INITIAL_FORMS": "1",
            "consents-TOTAL_FORMS": "1",
            "consents-INITIAL_FORMS": "1",
        },
    )
    form.pop("organization")
    response = world["admin"].post(f"/admin/crm/contact/{contact.pk}/change/", form)
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.custom_fields == {"a": 1, "c": 3}
