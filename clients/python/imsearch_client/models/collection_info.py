from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="CollectionInfo")


@_attrs_define
class CollectionInfo:
    """A collection of the deployment.

    Attributes:
        count (int): Images in it.
        name (str):
        created (float | None | Unset): When it was created (Unix time).
        index_spec (None | str | Unset): The index family it was created with.
        open_ (bool | Unset): Held in memory now (it opens on first use). Default: False.
    """

    count: int
    name: str
    created: float | None | Unset = UNSET
    index_spec: None | str | Unset = UNSET
    open_: bool | Unset = False
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        count = self.count

        name = self.name

        created: float | None | Unset
        if isinstance(self.created, Unset):
            created = UNSET
        else:
            created = self.created

        index_spec: None | str | Unset
        if isinstance(self.index_spec, Unset):
            index_spec = UNSET
        else:
            index_spec = self.index_spec

        open_ = self.open_

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "count": count,
                "name": name,
            }
        )
        if created is not UNSET:
            field_dict["created"] = created
        if index_spec is not UNSET:
            field_dict["index_spec"] = index_spec
        if open_ is not UNSET:
            field_dict["open"] = open_

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        count = d.pop("count")

        name = d.pop("name")

        def _parse_created(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        created = _parse_created(d.pop("created", UNSET))

        def _parse_index_spec(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        index_spec = _parse_index_spec(d.pop("index_spec", UNSET))

        open_ = d.pop("open", UNSET)

        collection_info = cls(
            count=count,
            name=name,
            created=created,
            index_spec=index_spec,
            open_=open_,
        )

        collection_info.additional_properties = d
        return collection_info

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
