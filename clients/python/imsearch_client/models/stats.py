from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.stats_rerank import StatsRerank


T = TypeVar("T", bound="Stats")


@_attrs_define
class Stats:
    """What the collection holds; the index, whitening and log details depend on the mode.

    Attributes:
        count (int): Images in the collection.
        mode (str): embedded (one process) or services.
        rerank (StatsRerank): The default re-ranking and its parameters.
        dim (int | None | Unset): Descriptor dimension (if any).
        model_id (None | str | Unset): The model that describes them (if any).
    """

    count: int
    mode: str
    rerank: StatsRerank
    dim: int | None | Unset = UNSET
    model_id: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        count = self.count

        mode = self.mode

        rerank = self.rerank.to_dict()

        dim: int | None | Unset
        if isinstance(self.dim, Unset):
            dim = UNSET
        else:
            dim = self.dim

        model_id: None | str | Unset
        if isinstance(self.model_id, Unset):
            model_id = UNSET
        else:
            model_id = self.model_id

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "count": count,
                "mode": mode,
                "rerank": rerank,
            }
        )
        if dim is not UNSET:
            field_dict["dim"] = dim
        if model_id is not UNSET:
            field_dict["model_id"] = model_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.stats_rerank import StatsRerank  # noqa: PLC0415

        d = dict(src_dict)
        count = d.pop("count")

        mode = d.pop("mode")

        rerank = StatsRerank.from_dict(d.pop("rerank"))

        def _parse_dim(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        dim = _parse_dim(d.pop("dim", UNSET))

        def _parse_model_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        model_id = _parse_model_id(d.pop("model_id", UNSET))

        stats = cls(
            count=count,
            mode=mode,
            rerank=rerank,
            dim=dim,
            model_id=model_id,
        )

        stats.additional_properties = d
        return stats

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
