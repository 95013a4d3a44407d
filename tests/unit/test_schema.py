"""The request schema: every rule names its field; idempotency; OpenAPI; never a 500."""

from __future__ import annotations

import copy
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from osago.config import Settings
from osago.domain.request import QUOTE_REQUEST
from osago.storage import MemoryStore
from tests.factories import MINIMAL_BODY, api_app

SETTINGS = Settings(insurer_codes=("aurora", "borealis"))
TODAY = date.today()


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


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
        (lambda b: b["vehicle"].update(year=TODAY.year + 2), "vehicle.year"),
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
