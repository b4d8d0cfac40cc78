"""Every message round-trips through to_dict → JSON → from_dict; malformed input is refused."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privrec.sdk.secagg import (
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    AdvertiseKeys,
    EncryptedShare,
    KeyRoster,
    MaskedInput,
    PublicKeys,
    RevealedShare,
    SecAggMessageError,
    ShareKeys,
    ShareRouting,
    UnmaskingRequest,
    UnmaskingResponse,
    message_from_dict,
)

ids = st.integers(1, 2**31 - 2)
key = st.binary(min_size=32, max_size=32)
blob = st.binary(max_size=80)
round_ids = st.text(min_size=1, max_size=12)
public_keys = st.builds(PublicKeys, client_id=ids, encryption=key, masking=key)
encrypted = st.builds(EncryptedShare, sender=ids, receiver=ids, nonce=st.binary(min_size=12, max_size=12), ciphertext=blob)
revealed = st.builds(RevealedShare, owner=ids, share=blob)
int_tuples = st.lists(ids, max_size=6).map(tuple)


@st.composite
def advertise(draw: st.DrawFn) -> AdvertiseKeys:
    u = draw(ids)
    return AdvertiseKeys(
        round_id=draw(round_ids), sender=u, keys=PublicKeys(client_id=u, encryption=draw(key), masking=draw(key))
    )


messages = st.one_of(
    advertise(),
    st.builds(KeyRoster, round_id=round_ids, recipient=ids, keys=st.lists(public_keys, max_size=4).map(tuple)),
    st.builds(ShareKeys, round_id=round_ids, sender=ids, shares=st.lists(encrypted, max_size=4).map(tuple)),
    st.builds(ShareRouting, round_id=round_ids, recipient=ids, shares=st.lists(encrypted, max_size=4).map(tuple)),
    st.builds(MaskedInput, round_id=round_ids, sender=ids, vector=st.binary(max_size=64).map(lambda b: b[: len(b) // 4 * 4])),
    st.builds(UnmaskingRequest, round_id=round_ids, recipient=ids, survivors=int_tuples, dropped=int_tuples),
    st.builds(
        UnmaskingResponse,
        round_id=round_ids,
        sender=ids,
        self_mask_shares=st.lists(revealed, max_size=4).map(tuple),
        key_shares=st.lists(revealed, max_size=4).map(tuple),
    ),
)


@settings(max_examples=100, deadline=None)
@given(message=messages)
def test_round_trip_through_json(message: Any) -> None:
    data = json.loads(json.dumps(message.to_dict()))
    assert data["type"] == message.TYPE
    again = message_from_dict(data)
    assert type(again) is type(message)
    assert again == message
    assert type(message).from_dict(data) == message


def test_every_message_class_has_a_stage_and_direction() -> None:
    assert {c.FROM_CLIENT for c in CLIENT_MESSAGES} == {True}
    assert {c.FROM_CLIENT for c in SERVER_MESSAGES} == {False}
    assert len({c.TYPE for c in (*CLIENT_MESSAGES, *SERVER_MESSAGES)}) == 7


def test_vector_wire_format_is_base64_of_little_endian_uint32() -> None:
    values = np.array([1, 2**32 - 1, 0x01020304], dtype=np.uint32)
    m = MaskedInput.from_array(round_id="r", sender=1, values=values)
    assert m.to_dict()["vector"] == "AQAAAP////8EAwIB"
    np.testing.assert_array_equal(m.values, values)


def test_malformed_input_is_refused() -> None:
    good = MaskedInput.from_array(round_id="r", sender=1, values=np.zeros(2, dtype=np.uint32)).to_dict()
    with pytest.raises(SecAggMessageError, match=r"`type` must be one of .*Found 'nope'"):
        message_from_dict({**good, "type": "nope"})
    with pytest.raises(SecAggMessageError, match=r"`type` must be 'key_roster'. Found 'masked_input'."):
        KeyRoster.from_dict(good)
    with pytest.raises(SecAggMessageError, match=r"Missing field `sender`."):
        message_from_dict({k: v for k, v in good.items() if k != "sender"})
    with pytest.raises(TypeError, match=r"`sender` must be int. Found bool."):
        message_from_dict({**good, "sender": True})
    with pytest.raises(TypeError, match=r"`sender` must be int. Found str."):
        message_from_dict({**good, "sender": "1"})
    with pytest.raises(SecAggMessageError, match="`vector` must be valid base64"):
        message_from_dict({**good, "vector": "***"})
    with pytest.raises(SecAggMessageError, match=r"`vector` must hold whole uint32 words. Found 3 bytes."):
        message_from_dict({**good, "vector": "AAAA"})
    with pytest.raises(TypeError, match="`round_id` must be a non-empty str"):
        MaskedInput(round_id="", sender=1, vector=b"")
    with pytest.raises(SecAggMessageError, match=r"`encryption` must be 32 bytes. Found 3."):
        PublicKeys(client_id=1, encryption=b"abc", masking=bytes(32))
    with pytest.raises(SecAggMessageError, match=r"`keys.client_id` must equal `sender` 2. Found 1."):
        AdvertiseKeys(round_id="r", sender=2, keys=PublicKeys(client_id=1, encryption=bytes(32), masking=bytes(32)))
    with pytest.raises(TypeError, match=r"`survivors` must contain int. Found bool."):
        UnmaskingRequest(round_id="r", recipient=1, survivors=(True,), dropped=())


@settings(max_examples=40, deadline=None)
@given(message=messages)
def test_unknown_fields_are_refused(message: Any) -> None:
    """A contract between processes accepts exactly its own fields, at every level of nesting."""
    data = json.loads(json.dumps(message.to_dict()))
    with pytest.raises(SecAggMessageError, match=rf"{type(message).__name__} has an unknown field `extra`."):
        message_from_dict({**data, "extra": 1})
    nested = next((k for k in ("keys", "shares", "self_mask_shares") if data.get(k)), None)
    if nested is not None:
        inner = data[nested]
        first = {**(inner[0] if isinstance(inner, list) else inner), "commitment": "AA=="}
        data[nested] = [first, *inner[1:]] if isinstance(inner, list) else first
        with pytest.raises(SecAggMessageError, match=r"has an unknown field `commitment`."):
            message_from_dict(data)
