"""Shared carts: who may share what, and what each reader of a cart sees."""

from __future__ import annotations

from tests.catalog import helpers as h
from tests.harness import Platform, auth_header, mint

CONTENTS = "/nbia-api/services/v1/getContentsByName"


async def test_sharing_and_reading_a_cart(catalog: Platform) -> None:
    limited = h.collection("Secret-MR", licence=h.TCIA_RESTRICTED, access="limited")
    open_ct, secret = h.ct(1), h.mr(1, patient_id="SECRET-1")
    await h.deliver(catalog, h.published(open_ct), h.published(secret, limited))
    both = [secret[0].SeriesInstanceUID, open_ct[0].SeriesInstanceUID]
    licensed = auth_header(mint("alice", lic=["tcia-restricted"], dup=True))

    r = await catalog.client.post("/api/catalog/carts", json={"series": both})
    assert r.status_code == 401  # sharing needs an account
    r = await catalog.client.post(
        "/api/catalog/carts", json={"series": both}, headers=auth_header(mint("bob"))
    )
    assert r.status_code == 400 and "not visible to you" in r.json()["detail"]

    r = await catalog.client.post(
        "/api/catalog/carts", json={"series": both, "name": "lung-study"}, headers=licensed
    )
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "lung-study" and r.json()["series"] == 2
    assert r.json()["url"].endswith(f"{CONTENTS}?name=lung-study")
    again = await catalog.client.post(
        "/api/catalog/carts", json={"series": both, "name": "lung-study"}, headers=licensed
    )
    assert again.status_code == 409 and "choose another name" in again.json()["detail"]

    # each reader sees the series their access allows, in the cart's order
    r = await catalog.client.get(CONTENTS, params={"name": "lung-study"}, headers=licensed)
    assert [s["SeriesInstanceUID"] for s in r.json()] == both
    r = await catalog.client.get(CONTENTS, params={"name": "lung-study"})
    assert [s["SeriesInstanceUID"] for s in r.json()] == both[1:]
    assert list(r.json()[0])[-1] == "Date Released"

    r = await catalog.client.get(CONTENTS)
    assert r.status_code == 400 and r.text == "A parameter, name is required for this API call."
    r = await catalog.client.get(CONTENTS, params={"name": "no-such-cart"})
    assert r.status_code == 200 and r.content == b""
