from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="CollectionCreate")


@_attrs_define
class CollectionCreate:
    """
    Attributes:
        name (str): 1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit.
        index_spec (None | str | Unset): Index family (a preset such as exact, hnsw, ivf-pq, or a FAISS factory string);
            default: the deployment's IMSEARCH_INDEX_SPEC.
    """

    name: str
    index_spec: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        index_spec: None | str | Unset
        if isinstance(self.index_spec, Unset):
            index_spec = UNSET
        else:
            index_spec = self.index_spec

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "name": name,
            }
        )
        if index_spec is not UNSET:
            field_dict["index_spec"] = index_spec

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        def _parse_index_spec(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        index_spec = _parse_index_spec(d.pop("index_spec", UNSET))

        collection_create = cls(
            name=name,
            index_spec=index_spec,
        )

        collection_create.additional_properties = d
        return collection_create

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
