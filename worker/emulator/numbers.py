"""The emulated phone numbers: import, read, route, remove (`docs/api-reference.md` §2.15-2.19).

Numbers are not tied to an App ID (their paths carry none); an import needs a provider (byo or
twilio), an E.164 number, a non-empty label and both config objects (422
`unprocessable_content` otherwise, 400 `invalid_phone_format` for the number); duplicates get
409 `phone_number_exists`, unknown numbers 404 `not_found`, in the telephony error shape.
"""

from __future__ import annotations

from typing import Any

from worker.emulator import validation as v
from worker.emulator.errors import EmulatedError, InvalidBodyError, not_found

PROVIDERS = frozenset({"byo", "twilio"})
# the import answers without the configs (`docs/api-reference.md` §2.16)
ADD_RESPONSE_FIELDS = (
    "provider",
    "phone_number",
    "label",
    "inbound",
    "outbound",
    "associated_pipeline",
)


class PhoneNumbers:
    """Imported numbers by E.164 string."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}

    def clear(self) -> None:
        """Forget every number."""
        self._records.clear()

    def list(self) -> list[dict[str, Any]]:
        """GET /phone-numbers: a bare array."""
        return list(self._records.values())

    def add(self, body: Any) -> dict[str, Any]:
        """POST /phone-numbers: 201 on import, 409 `phone_number_exists` on a duplicate."""
        body = v.as_object(body)
        provider = v.required_str(body, "provider")
        if provider not in PROVIDERS:
            raise InvalidBodyError("InvalidFieldValue", "provider must be byo or twilio")
        number = v.phone_number(v.required_str(body, "phone_number"))
        label = v.required_str(body, "label")
        inbound_config = v.required_object(body, "inbound_config")
        outbound_config = v.required_object(body, "outbound_config")
        if number in self._records:
            raise EmulatedError(409, "phone_number_exists", f"{number} is already imported")
        record = {
            "provider": provider,
            "phone_number": number,
            "label": label,
            "inbound": v.optional(body, "inbound", bool) is not False,
            "outbound": v.optional(body, "outbound", bool) is not False,
            "associated_pipeline": None,
            "inbound_config": inbound_config,
            "outbound_config": outbound_config,
        }
        self._records[number] = record
        return {key: record[key] for key in ADD_RESPONSE_FIELDS}

    def get(self, number: str) -> dict[str, Any]:
        """GET /phone-numbers/{number}: 404 `not_found` when unknown."""
        return self._record(number)

    def update(self, number: str, body: Any) -> dict[str, Any]:
        """PATCH /phone-numbers/{number}: replace the given configs (null clears one)."""
        record = self._record(number)
        body = v.as_object(body)
        for field in ("inbound_config", "outbound_config"):
            if field in body:
                record[field] = v.optional(body, field, dict)
        inbound = record["inbound_config"] or {}
        pipeline_id = inbound.get("pipeline_id")
        record["associated_pipeline"] = (
            {"pipeline_id": pipeline_id, "pipeline_name": pipeline_id} if pipeline_id else None
        )
        return record

    def delete(self, number: str) -> None:
        """DELETE /phone-numbers/{number}: 404 `not_found` when unknown."""
        self._record(number)
        del self._records[number]

    def _record(self, number: str) -> dict[str, Any]:
        record = self._records.get(number)
        if record is None:
            raise not_found("telephony", f"phone number {number} not found")
        return record
