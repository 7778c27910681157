from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.add_response_metadata import AddResponseMetadata


T = TypeVar("T", bound="AddResponse")


@_attrs_define
class AddResponse:
    """
    Attributes:
        created (bool): False when the same id already held the same image.
        id (str):
        metadata (AddResponseMetadata):
        sha256 (None | str):
    """

    created: bool
    id: str
    metadata: AddResponseMetadata
    sha256: None | str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created = self.created

        id = self.id

        metadata = self.metadata.to_dict()

        sha256: None | str
        sha256 = self.sha256

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created": created,
                "id": id,
                "metadata": metadata,
                "sha256": sha256,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.add_response_metadata import AddResponseMetadata  # noqa: PLC0415

        d = dict(src_dict)
        created = d.pop("created")

        id = d.pop("id")

        metadata = AddResponseMetadata.from_dict(d.pop("metadata"))

        def _parse_sha256(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        sha256 = _parse_sha256(d.pop("sha256"))

        add_response = cls(
            created=created,
            id=id,
            metadata=metadata,
            sha256=sha256,
        )

        add_response.additional_properties = d
        return add_response

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
