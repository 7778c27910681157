from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.search_hit import SearchHit
    from ..models.search_response_rerank import SearchResponseRerank
    from ..models.search_response_timings_ms import SearchResponseTimingsMs


T = TypeVar("T", bound="SearchResponse")


@_attrs_define
class SearchResponse:
    """
    Attributes:
        cache (str): hit: the query's descriptors came from the cache; else miss.
        k (int):
        model_id (str):
        no_confident_match (bool | None): True when no result is a confident match (the object is probably not in the
            collection); null when the re-ranking does not verify.
        rerank (SearchResponseRerank): The re-ranking method and its parameters.
        results (list[SearchHit]):
        timings_ms (SearchResponseTimingsMs): extract, search, rerank, total
    """

    cache: str
    k: int
    model_id: str
    no_confident_match: bool | None
    rerank: SearchResponseRerank
    results: list[SearchHit]
    timings_ms: SearchResponseTimingsMs
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        cache = self.cache

        k = self.k

        model_id = self.model_id

        no_confident_match: bool | None
        no_confident_match = self.no_confident_match

        rerank = self.rerank.to_dict()

        results = []
        for results_item_data in self.results:
            results_item = results_item_data.to_dict()
            results.append(results_item)

        timings_ms = self.timings_ms.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cache": cache,
                "k": k,
                "model_id": model_id,
                "no_confident_match": no_confident_match,
                "rerank": rerank,
                "results": results,
                "timings_ms": timings_ms,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.search_hit import SearchHit  # noqa: PLC0415
        from ..models.search_response_rerank import SearchResponseRerank  # noqa: PLC0415
        from ..models.search_response_timings_ms import SearchResponseTimingsMs  # noqa: PLC0415

        d = dict(src_dict)
        cache = d.pop("cache")

        k = d.pop("k")

        model_id = d.pop("model_id")

        def _parse_no_confident_match(data: object) -> bool | None:
            if data is None:
                return data
            return cast(bool | None, data)

        no_confident_match = _parse_no_confident_match(d.pop("no_confident_match"))

        rerank = SearchResponseRerank.from_dict(d.pop("rerank"))

        results = []
        _results = d.pop("results")
        for results_item_data in _results:
            results_item = SearchHit.from_dict(results_item_data)

            results.append(results_item)

        timings_ms = SearchResponseTimingsMs.from_dict(d.pop("timings_ms"))

        search_response = cls(
            cache=cache,
            k=k,
            model_id=model_id,
            no_confident_match=no_confident_match,
            rerank=rerank,
            results=results,
            timings_ms=timings_ms,
        )

        search_response.additional_properties = d
        return search_response

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
