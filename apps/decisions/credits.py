"""AI credits: every organization has a balance, and a ledger of every change to it.

How credits come and go
- Plan grant: each calendar month (UTC) an organization receives its plan's allowance
  (`plan_monthly_credits`: free 500, starter 3,000, growth 15,000, scale 75,000). Unused
  plan credits expire when the next month's grant arrives (a `plan_expiry` ledger entry).
  The grant happens on the organization's first decision (so a new organization can decide
  out of the box, no setup needed) and on the first decision of each month; the beat job
  `decisions.credits-grant-monthly` also grants it on the 1st for every organization that
  already has an account, so balances are right before anyone asks.
- Top-ups (`credits_top_up`) are bought credits: they never expire and are used after the
  plan credits.
- A decision costs `DECISION_COST[engine]` credits: 1 with the rules engine, 3 with the
  LLM; a decision where the LLM failed and the rules engine answered costs 1. A decision
  replayed from its `event_id` costs nothing. The simulator costs nothing.

Consumption is one conditional UPDATE (`... WHERE plan_balance + topup_balance >= cost`),
so concurrent decisions can never overdraw: the last ones get `402 credits_exhausted`. A
check constraint also keeps both balances non-negative.

Plan tiers and their limits live here on purpose: `plan_monthly_credits` is the single
place a plan's allowance is read, so plan limits (issue 9) hook in here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone

from apps.core.errors import PaymentRequired, ValidationFailed
from apps.decisions.models import CreditAccount, CreditLedgerEntry, LedgerKind

PLAN_MONTHLY_CREDITS = {"free": 500, "starter": 3_000, "growth": 15_000, "scale": 75_000}
DEFAULT_MONTHLY_CREDITS = PLAN_MONTHLY_CREDITS["free"]
DECISION_COST = {"rules": 1, "llm": 3}
MAX_TOP_UP = 10_000_000

_ACCOUNT = CreditAccount._meta.db_table
_BALANCE_SQL = (
    f"SELECT plan_balance, topup_balance, plan_period FROM {_ACCOUNT} WHERE organization_id = %s"  # noqa: S608
)
_CONSUME_SQL = f"""
UPDATE {_ACCOUNT}
SET plan_balance = plan_balance - LEAST(plan_balance, %(n)s),
    topup_balance = topup_balance - (%(n)s - LEAST(plan_balance, %(n)s)),
    updated_at = %(now)s
WHERE organization_id = %(org)s AND plan_balance + topup_balance >= %(n)s
RETURNING plan_balance, topup_balance
"""  # noqa: S608 - table name is our own model's


def plan_monthly_credits(organization) -> int:
    """The organization's monthly AI-credit allowance: its plan tier's `ai_credits_per_month`
    (editable in the admin, apps.revenue), else the built-in defaults."""
    from apps.revenue.models import Plan

    allowance = (
        Plan.objects.filter(key=organization.plan)
        .values_list("ai_credits_per_month", flat=True)
        .first()
    )
    if allowance is not None:
        return allowance
    return PLAN_MONTHLY_CREDITS.get(organization.plan, DEFAULT_MONTHLY_CREDITS)


def decision_cost(engine: str) -> int:
    return DECISION_COST.get(engine, 1)


def period_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def next_renewal(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def _ledger(account: CreditAccount, kind: str, amount: int, **fields) -> CreditLedgerEntry:
    return CreditLedgerEntry.objects.create(
        organization_id=account.organization_id,
        kind=kind,
        amount=amount,
        plan_balance_after=account.plan_balance,
        topup_balance_after=account.topup_balance,
        **fields,
    )


@transaction.atomic
def credits_plan_grant(*, organization, now: datetime | None = None) -> CreditLedgerEntry | None:
    """Grant this month's plan allowance unless it was granted already (then None).

    Expires the previous month's unused plan credits first. Idempotent per month and
    race-safe (the account row is locked; the ledger allows one grant per month).
    """
    now = now or timezone.now()
    period = period_of(now)
    account, _ = CreditAccount.objects.get_or_create(organization=organization)
    account = CreditAccount.objects.select_for_update().get(pk=account.pk)
    if account.plan_period >= period:  # granted already (or a later month's: a late caller)
        return None
    if account.plan_balance:
        expired = account.plan_balance
        account.plan_balance = 0
        _ledger(
            account,
            LedgerKind.PLAN_EXPIRY,
            -expired,
            period=account.plan_period,
            note=f"Unused {account.plan_period or 'plan'} credits expired",
        )
    allowance = plan_monthly_credits(organization)
    account.plan_balance = allowance
    account.plan_period = period
    account.save(update_fields=["plan_balance", "plan_period", "updated_at"])
    return _ledger(
        account,
        LedgerKind.PLAN_GRANT,
        allowance,
        period=period,
        note=f"{organization.plan} plan: {allowance} credits for {period}",
    )


def credits_account(*, organization, now: datetime | None = None) -> CreditAccount:
    """The organization's account, with this month's plan grant applied (granted now if it
    was not: the first use of a new organization, or the first use in a new month).
    One query when the grant is already there."""
    now = now or timezone.now()
    account = CreditAccount.objects.filter(organization=organization).first()
    if account is None or account.plan_period < period_of(now):
        credits_plan_grant(organization=organization, now=now)
        account = CreditAccount.objects.get(organization=organization)
    return account


def _exhausted(organization, account: CreditAccount, needed: int, now: datetime):
    renews = next_renewal(now)
    return PaymentRequired(
        f"This organization has used all its AI credits ({account.balance} left; this "
        f"decision needs {needed}). The {organization.plan} plan's "
        f"{plan_monthly_credits(organization)} monthly credits renew on "
        f"{renews:%Y-%m-%d} (UTC); a top-up adds credits now.",
        code="credits_exhausted",
        details={
            "balance": account.balance,
            "required": needed,
            "plan": organization.plan,
            "renews_at": renews.isoformat().replace("+00:00", "Z"),
        },
    )


def credits_require(*, organization, amount: int, now: datetime | None = None) -> CreditAccount:
    """Raise `PaymentRequired` (`credits_exhausted`) unless `amount` credits are available.

    A cheap early check (nothing is reserved): `credits_consume` is what guarantees it.
    """
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_BALANCE_SQL, [organization.pk])
        row = cursor.fetchone()
    if row is not None and row[2] >= period_of(now):
        account = CreditAccount(
            organization_id=organization.pk, plan_balance=row[0], topup_balance=row[1]
        )
    else:  # first use, or the first use this month: grant the plan's credits first
        account = credits_account(organization=organization, now=now)
    if account.balance < amount:
        raise _exhausted(organization, account, amount, now)
    return account


def credits_consume(
    *, organization, amount: int, decision=None, now: datetime | None = None
) -> CreditAccount:
    """Take `amount` credits (plan credits first, then top-ups) and write the ledger entry.

    Must run inside the caller's transaction (the decision's), so a rolled-back decision
    gives its credits back. One conditional UPDATE: never overdraws, whatever the
    concurrency. Raises `PaymentRequired` when the balance is short.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("credits_consume() must run inside the decision's transaction")
    now = now or timezone.now()
    if amount <= 0:
        return credits_account(organization=organization, now=now)
    row = _consume(organization, amount, now)
    if row is None:  # no account yet, a new month, or really exhausted
        account = credits_account(organization=organization, now=now)
        row = _consume(organization, amount, now)
        if row is None:
            account.refresh_from_db()
            raise _exhausted(organization, account, amount, now)
    account = CreditAccount(
        organization_id=organization.pk, plan_balance=row[0], topup_balance=row[1]
    )
    _ledger(account, LedgerKind.DECISION, -amount, decision=decision)
    return account


def _consume(organization, amount: int, now: datetime):
    with connection.cursor() as cursor:
        cursor.execute(_CONSUME_SQL, {"n": amount, "org": organization.pk, "now": now})
        return cursor.fetchone()


@transaction.atomic
def credits_top_up(
    *, organization, amount: int, note: str = "", created_by=None, now: datetime | None = None
) -> CreditLedgerEntry:
    """Add bought credits (they never expire). Not idempotent: one call, one top-up."""
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_TOP_UP:
        raise ValidationFailed(
            f"amount: a whole number between 1 and {MAX_TOP_UP}.", details={"amount": ["invalid"]}
        )
    credits_account(organization=organization, now=now)
    account = CreditAccount.objects.select_for_update().get(organization=organization)
    account.topup_balance += amount
    account.save(update_fields=["topup_balance", "updated_at"])
    return _ledger(
        account, LedgerKind.TOP_UP, amount, note=(note or "Top-up")[:200], created_by=created_by
    )


def credits_grant_monthly(*, now: datetime | None = None) -> int:
    """Beat job: grant this month's allowance to every account that lacks it. Idempotent;
    returns how many organizations were granted."""
    now = now or timezone.now()
    period = period_of(now)
    granted = 0
    accounts = (
        CreditAccount.objects.filter(plan_period__lt=period)
        .select_related("organization")
        .filter(organization__is_active=True)
    )
    for account in accounts.iterator(chunk_size=200):
        if credits_plan_grant(organization=account.organization, now=now) is not None:
            granted += 1
    return granted
