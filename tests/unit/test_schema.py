"""The request schema: every rule names its field; idempotency; OpenAPI; never a 500."""

from __future__ import annotations

import copy
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osago.config import Settings
from osago.domain.dates import moscow_today
from osago.domain.request import QUOTE_REQUEST, validate_request
from osago.errors import ValidationFailed
from osago.storage import MemoryStore
from tests.factories import MINIMAL_BODY, api_app

SETTINGS = Settings(insurer_codes=("aurora", "borealis"))


def today() -> date:
    """Moscow's date now, as the api takes it: read at each use, not at import (a run that
    crossed Moscow's midnight between collecting and running saw a day-old "today")."""
    return moscow_today(time.time())


def day(offset: int) -> str:
    return (today() + timedelta(days=offset)).isoformat()


async def post(body: Any, store: MemoryStore | None = None) -> tuple[int, Any, Any]:
    async with api_app(SETTINGS, store) as app:
        r = await app.test_client().post("/api/v1/calculations", json=body)
        return r.status_code, await r.get_json(), r.headers  # case-insensitive


def full_body() -> dict[str, Any]:
    return {
        **copy.deepcopy(MINIMAL_BODY),
        "request_id": str(uuid.uuid4()),
        "vehicle": {
            "category": "B",
            "engine_power_hp": 150,
            "year": 2019,
            "plate": "А123ВС77",
            "vin": "XTA21099012345678",
            "registration_document": {
                "type": "STS",
                "series": "77AB",
                "number": "123456",
                "issued_at": "2019-05-01",
            },
        },
        "owner": {
            "type": "individual",
            "region_kladr": "7700000000000",
            "last_name": "Ivanov",
            "passport": {"series": "4510", "number": "123456"},
        },
    }


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["policy"].update(start_date=day(-1)), "policy.start_date"),
        (lambda b: b["policy"].update(start_date=day(61)), "policy.start_date"),
        (lambda b: b["policy"].update(period_months=2), "policy.period_months"),
        (lambda b: b["policy"].update(purpose="rental"), "policy.purpose"),
        (lambda b: b["vehicle"].update(category="C"), "vehicle.category"),
        (lambda b: b["vehicle"].update(engine_power_hp=0), "vehicle.engine_power_hp"),
        (lambda b: b["vehicle"].update(year=today().year + 2), "vehicle.year"),
        (lambda b: b["vehicle"].update(plate="12345"), "vehicle.plate"),
        (lambda b: b["vehicle"].update(vin="XTA21099O12345678"), "vehicle.vin"),  # letter O
        (lambda b: b["vehicle"].update(body_number="B1"), "vehicle.body_number"),  # two ids
        (
            lambda b: b["vehicle"]["registration_document"].update(type="XX"),
            "vehicle.registration_document.type",
        ),
        (lambda b: b["owner"].update(region_kladr="0300000100000"), "owner.region_kladr"),
        (lambda b: b["owner"].update(type="company"), "owner.type"),
        (lambda b: b["owner"]["passport"].update(number="12"), "owner.passport.number"),
        (lambda b: b["owner"].update(inn="123"), "owner.inn"),
        (lambda b: b.update(drivers=[]), "drivers"),
        (lambda b: b.update(drivers=[MINIMAL_BODY["drivers"][0]] * 6), "drivers"),
        (lambda b: b["drivers"][0].update(birth_date=day(-17 * 365)), "drivers.0.birth_date"),
        (
            lambda b: b["drivers"][0].update(experience_start_date="1999-01-01"),
            "drivers.0.experience_start_date",
        ),  # before the 16th birthday
        (
            lambda b: b["drivers"][0].update(experience_start_date=day(10)),
            "drivers.0.experience_start_date",
        ),  # after the policy start
        (lambda b: b["drivers"][0].update(kbm_class="14"), "drivers.0.kbm_class"),
        (lambda b: b["policy"].update(unlimited_drivers=True), "drivers"),
        (
            lambda b: (b["policy"].update(purpose="taxi"), b["vehicle"].update(category="A")),
            "policy.purpose",
        ),
        (lambda b: b.update(request_id="not-a-uuid"), "request_id"),
    ],
)
async def test_every_rule_names_its_field(mutate: Any, field: str) -> None:
    body = full_body()
    mutate(body)
    status, answer, _ = await post(body)
    assert status == 422, answer
    assert field in [e["field"] for e in answer["errors"]], answer["errors"]


async def test_a_full_valid_body_is_accepted() -> None:
    status, answer, _ = await post(full_body())
    assert status == 202, answer


async def test_unlimited_list_needs_no_drivers() -> None:
    body = full_body()
    body["policy"]["unlimited_drivers"] = True
    del body["drivers"]
    assert (await post(body))[0] == 202


async def test_same_request_id_and_body_is_the_same_calculation() -> None:
    store = MemoryStore()
    body = full_body()
    first = await post(body, store)
    again = await post(copy.deepcopy(body), store)
    assert first[0] == again[0] == 202
    assert first[1]["calculation_id"] == again[1]["calculation_id"] == body["request_id"]
    assert again[2].get("Idempotent-Replayed") == "true"
    assert len(store.calcs) == 1
    assert len(store.outbox) == 2  # one job per insurer, once
    body["vehicle"]["engine_power_hp"] = 200
    conflict = await post(body, store)
    assert conflict[0] == 409
    assert conflict[1]["error"] == "conflict"


async def test_openapi_is_generated_from_the_validating_model() -> None:
    async with api_app(SETTINGS) as app:
        r = await app.test_client().get("/api/v1/openapi.json")
        doc = await r.get_json()
    schema = doc["components"]["schemas"]["QuoteRequest"]
    assert schema == QUOTE_REQUEST.json_schema()
    assert set(schema["required"]) == {"user_id", "policy", "vehicle", "owner"}
    # Every required field the document names is reported when missing.
    for name in schema["required"]:
        body = copy.deepcopy(MINIMAL_BODY)
        del body[name]
        status, answer, _ = await post(body)
        assert status == 422
        assert name in [e["field"] for e in answer["errors"]]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
PATHS = [
    ("user_id",),
    ("policy",),
    ("policy", "start_date"),
    ("policy", "period_months"),
    ("vehicle", "engine_power_hp"),
    ("vehicle", "category"),
    ("owner", "region_kladr"),
    ("drivers",),
    ("drivers", 0),
    ("drivers", 0, "birth_date"),
    ("request_id",),
    ("policy", "unlimited_drivers"),
    ("owner", "type"),
    ("vehicle", "plate"),
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(JSON, st.tuples(st.sampled_from(PATHS), JSON)))
def test_no_input_yields_a_500(case: Any) -> None:
    if isinstance(case, tuple) and len(case) == 2 and isinstance(case[0], tuple):
        path, value = case
        body: Any = copy.deepcopy(MINIMAL_BODY)
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    else:
        body = case

    async def run() -> int:
        return (await post(body))[0]

    assert trio.run(run) in (202, 400, 409, 422)


def _variant(
    ids: tuple[str, ...], purpose: str, category: str, unlimited: bool, owner: str, drivers: int
) -> dict[str, Any]:
    body = copy.deepcopy(MINIMAL_BODY)
    body["policy"].update(purpose=purpose, unlimited_drivers=unlimited)
    body["vehicle"].update({k: v for k, v in IDS.items() if k in ids}, category=category)
    body["owner"]["type"] = owner
    body["drivers"] = body["drivers"] * drivers
    return body


IDS = {"vin": "XTA21099000000000", "body_number": "B-1", "chassis_number": "C-1"}


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.sampled_from(sorted(IDS)), unique=True).map(tuple),
    purpose=st.sampled_from(["personal", "taxi"]),
    category=st.sampled_from(["A", "B", "BE"]),
    unlimited=st.booleans(),
    owner=st.sampled_from(["individual", "legal"]),
    drivers=st.integers(0, 2),
    nulls=st.lists(st.sampled_from(["vin", "year", "purpose", "type", "drivers", "unlimited"])),
    kladr=st.sampled_from(["7700000000000", "7700000200000", "5000001100000", "1600000100000"])
    | st.from_regex(r"\d{13}", fullmatch=True),
)
def test_the_document_states_the_cross_field_rules_the_server_applies(
    ids: tuple[str, ...],
    purpose: str,
    category: str,
    unlimited: bool,
    owner: str,
    drivers: int,
    kladr: str,
    nulls: list[str],
) -> None:
    """Issue 10: bodies valid by the document were refused by rules it did not state. Every
    rule but the ones relative to today (start date, ages: said in descriptions) is in it."""
    body = _variant(ids, purpose, category, unlimited, owner, drivers)
    body["owner"]["region_kladr"] = kladr
    for name in nulls:  # null stands for absent, to the server and in the document
        where = {"vin": "vehicle", "year": "vehicle", "purpose": "policy", "type": "owner"}
        if name == "drivers":
            body["drivers"] = None
        elif name == "unlimited":
            body["policy"]["unlimited_drivers"] = None
        else:
            body[where[name]][name] = None
    by_document = jsonschema_rs.validator_for(QUOTE_REQUEST.json_schema()).is_valid(body)
    try:
        validate_request(body, today=today())
        by_server = True
    except ValidationFailed:
        by_server = False
    assert by_document == by_server


def test_unknown_keys_are_dropped_so_nothing_unchecked_reaches_storage() -> None:
    """schemathesis found a 503: an unknown key "\\u0000" (or a lone surrogate) deep in the
    body went through to PostgreSQL's jsonb, which refused it."""
    body = copy.deepcopy(MINIMAL_BODY)
    body["vehicle"]["\x00"] = {"\udbe8": [1]}
    body["extra"] = "kept?"
    cleaned = validate_request(body, today=today())
    assert "\x00" not in cleaned["vehicle"]
    assert "extra" not in cleaned
    assert cleaned["vehicle"] == {"category": "B", "engine_power_hp": 150, "trailer": False}


def test_today_is_moscows_today_late_in_the_utc_evening() -> None:
    # 2026-11-30 22:00 UTC is 2026-12-01 01:00 in Moscow: a policy may start on the 1st,
    # not on the 30th, which is already yesterday there.
    evening = datetime(2026, 11, 30, 22, 0, tzinfo=UTC).timestamp()
    assert moscow_today(evening) == date(2026, 12, 1)
    assert moscow_today(evening - 3601.0) == date(2026, 11, 30)  # 23:59:59 in Moscow
    body = copy.deepcopy(MINIMAL_BODY)
    body["policy"]["start_date"] = "2026-11-30"
    with pytest.raises(ValidationFailed) as failed:
        validate_request(body, today=moscow_today(evening))
    assert [e.field for e in failed.value.errors] == ["policy.start_date"]
    body["policy"]["start_date"] = "2026-12-01"
    assert validate_request(body, today=moscow_today(evening))["policy"]["start_date"]
