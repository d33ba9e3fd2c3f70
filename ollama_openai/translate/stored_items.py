"""The ids of a response's items, and the stored item an ``item_reference`` names.

An item id carries its response's id: ``resp_<32 hex>`` makes ``msg_<the same 32 hex><index>``
(``rs_``, ``fc_``, ``fco_`` by kind), the index being the item's place, in hex of two digits or
more, among the response's input items then its output items. A reference is thus found by
loading one response under the caller's key, with no index of items to keep. An id made before
this scheme (32 hex digits and nothing more) names no response; one OpenAI made names a response
this gateway never stored.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .envelope import new_id

# Item id prefixes, as OpenAI's.
ITEM_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}
_RESPONSE_PREFIX = "resp_"
_ITEM_ID = re.compile(
    rf"(?:{'|'.join(ITEM_PREFIXES.values())})_(?P<response>[0-9a-f]{{32}})[0-9a-f]{{2,}}"
)


def new_response_id() -> str:
    """A response id: ``resp_`` and 32 hex digits, which its items' ids repeat."""
    return new_id("resp", "_")


def item_id(response_id: str, kind: str, index: int) -> str:
    """The id of the item of type ``kind`` at ``index`` among the response's input items, then
    its output items."""
    return f"{ITEM_PREFIXES[kind]}_{response_id.removeprefix(_RESPONSE_PREFIX)}{index:02x}"


def response_id_of(item_id: str) -> str | None:
    """The id of the response an item id was made for; None for an id of another making."""
    found = _ITEM_ID.fullmatch(item_id)
    return _RESPONSE_PREFIX + found["response"] if found else None


def stored_item(items: list[dict[str, Any]], item_id: str) -> dict[str, Any] | None:
    """The item ``item_id`` names among a stored response's input and output items, as an input
    item (a copy); None when it is not there.

    Output items are stored in shapes the input takes as they are (an assistant ``message`` of
    ``output_text`` parts, a ``reasoning`` item, a ``function_call``, each with its ``id`` and
    ``status``); only an output text's ``logprobs`` are left behind, as they say nothing to the
    model and would fill the new response's input items.
    """
    for item in items:
        if item.get("id") != item_id:
            continue
        found = copy.deepcopy(item)
        if found.get("type") == "message" and isinstance(found.get("content"), list):
            for part in found["content"]:
                part.pop("logprobs", None)
        return found
    return None
