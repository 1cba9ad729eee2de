"""What the server must know about a QuickBooks company, read once and cached."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from services.books.ports import ProfileCache
from services.clock import utcnow
from services.quickbooks.client import QuickBooksClient

PROFILE_MAX_AGE = timedelta(hours=12)


@dataclass(frozen=True)
class CompanyProfile:
    """Country, currency and preferences of a company, and its payment terms."""

    country: str
    home_currency: str
    multicurrency: bool
    custom_txn_numbers: bool
    terms: dict[str, int]
    # QuickBooks' automated sales tax (US): it works out the tax of lines marked TAX itself.
    automated_sales_tax: bool = False

    @property
    def is_us(self) -> bool:
        """Tell whether US sales-tax rules (TAX/NON per line) apply."""
        return self.country.upper() in ("US", "USA")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompanyProfile:
        """Rebuild a profile from its cached form."""
        return cls(
            country=data.get("country") or "US",
            home_currency=data.get("home_currency") or "USD",
            multicurrency=bool(data.get("multicurrency")),
            custom_txn_numbers=bool(data.get("custom_txn_numbers")),
            terms={str(k): int(v) for k, v in (data.get("terms") or {}).items()},
            automated_sales_tax=bool(data.get("automated_sales_tax")),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the cacheable form."""
        return {
            "country": self.country,
            "home_currency": self.home_currency,
            "multicurrency": self.multicurrency,
            "custom_txn_numbers": self.custom_txn_numbers,
            "terms": self.terms,
            "automated_sales_tax": self.automated_sales_tax,
        }


def fetch_profile(qbo: QuickBooksClient) -> CompanyProfile:
    """Read the profile from QuickBooks (three calls)."""
    info = qbo.company_info()
    prefs = qbo.preferences()
    terms = qbo.terms()
    currency = prefs.get("CurrencyPrefs") or {}
    return CompanyProfile(
        country=info.get("Country") or "US",
        home_currency=(currency.get("HomeCurrency") or {}).get("value") or "USD",
        multicurrency=bool(currency.get("MultiCurrencyEnabled")),
        custom_txn_numbers=bool((prefs.get("SalesFormsPrefs") or {}).get("CustomTxnNumbers")),
        terms={str(t["Id"]): int(t.get("DueDays") or 0) for t in terms},
        automated_sales_tax=bool((prefs.get("TaxPrefs") or {}).get("PartnerTaxEnabled")),
    )


def company_profile(cache: ProfileCache, qbo: QuickBooksClient, *, refresh: bool = False) -> CompanyProfile:
    """Return the cached profile, reading it again when stale or asked to."""
    cached = cache.cached_profile(qbo.realm_id)
    if cached and not refresh and utcnow() - cached.fetched_at < PROFILE_MAX_AGE:
        return CompanyProfile.from_dict(cached.profile)
    profile = fetch_profile(qbo)
    cache.save_profile(qbo.realm_id, profile.to_dict())
    return profile
