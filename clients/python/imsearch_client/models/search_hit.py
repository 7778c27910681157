from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.search_hit_metadata import SearchHitMetadata


T = TypeVar("T", bound="SearchHit")


@_attrs_define
class SearchHit:
    """
    Attributes:
        global_score (float): Cosine similarity of the global descriptors.
        id (str):
        score (float): Ranking score, decreasing down the list.
        box (list[float] | None | Unset): For a confident match: where it is in the query photo, [x1, y1, x2, y2] as
            fractions of the photo's width and height (several objects in one photo each get their own box).
        confidence (float | None | Unset): Probability (calibrated on the development sets) that this result shows the
            query's object, from its geometric verification; null when not verified.
        inliers (int | None | Unset): Geometric verification inliers, if checked.
        matches (list[list[float]] | None | Unset): With matches=true, for verified results: the consistent keypoint
            pairs [x_query, y_query, x_result, y_result], each a fraction of its image's width/height.
        metadata (SearchHitMetadata | Unset):
        verified (bool | Unset): A confident match: verified geometrically with enough confidence. Default: False.
    """

    global_score: float
    id: str
    score: float
    box: list[float] | None | Unset = UNSET
    confidence: float | None | Unset = UNSET
    inliers: int | None | Unset = UNSET
    matches: list[list[float]] | None | Unset = UNSET
    metadata: SearchHitMetadata | Unset = UNSET
    verified: bool | Unset = False
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        global_score = self.global_score

        id = self.id

        score = self.score

        box: list[float] | None | Unset
        if isinstance(self.box, Unset):
            box = UNSET
        elif isinstance(self.box, list):
            box = []
            for box_type_0_item_data in self.box:
                box_type_0_item: float
                box_type_0_item = box_type_0_item_data
                box.append(box_type_0_item)

        else:
            box = self.box

        confidence: float | None | Unset
        if isinstance(self.confidence, Unset):
            confidence = UNSET
        else:
            confidence = self.confidence

        inliers: int | None | Unset
        if isinstance(self.inliers, Unset):
            inliers = UNSET
        else:
            inliers = self.inliers

        matches: list[list[float]] | None | Unset
        if isinstance(self.matches, Unset):
            matches = UNSET
        elif isinstance(self.matches, list):
            matches = []
            for matches_type_0_item_data in self.matches:
                matches_type_0_item = []
                for matches_type_0_item_item_data in matches_type_0_item_data:
                    matches_type_0_item_item: float
                    matches_type_0_item_item = matches_type_0_item_item_data
                    matches_type_0_item.append(matches_type_0_item_item)

                matches.append(matches_type_0_item)

        else:
            matches = self.matches

        metadata: dict[str, Any] | Unset = UNSET
        if not isinstance(self.metadata, Unset):
            metadata = self.metadata.to_dict()

        verified = self.verified

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "global_score": global_score,
                "id": id,
                "score": score,
            }
        )
        if box is not UNSET:
            field_dict["box"] = box
        if confidence is not UNSET:
            field_dict["confidence"] = confidence
        if inliers is not UNSET:
            field_dict["inliers"] = inliers
        if matches is not UNSET:
            field_dict["matches"] = matches
        if metadata is not UNSET:
            field_dict["metadata"] = metadata
        if verified is not UNSET:
            field_dict["verified"] = verified

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.search_hit_metadata import SearchHitMetadata  # noqa: PLC0415

        d = dict(src_dict)
        global_score = d.pop("global_score")

        id = d.pop("id")

        score = d.pop("score")

        def _parse_box(data: object) -> list[float] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                box_type_0 = []
                _box_type_0 = data
                for box_type_0_item_data in _box_type_0:

                    def _parse_box_type_0_item(data: object) -> float:
                        return cast(float, data)

                    box_type_0_item = _parse_box_type_0_item(box_type_0_item_data)

                    box_type_0.append(box_type_0_item)

                return box_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[float] | None | Unset, data)

        box = _parse_box(d.pop("box", UNSET))

        def _parse_confidence(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        confidence = _parse_confidence(d.pop("confidence", UNSET))

        def _parse_inliers(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        inliers = _parse_inliers(d.pop("inliers", UNSET))

        def _parse_matches(data: object) -> list[list[float]] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                matches_type_0 = []
                _matches_type_0 = data
                for matches_type_0_item_data in _matches_type_0:
                    matches_type_0_item = []
                    _matches_type_0_item = matches_type_0_item_data
                    for matches_type_0_item_item_data in _matches_type_0_item:

                        def _parse_matches_type_0_item_item(data: object) -> float:
                            return cast(float, data)

                        matches_type_0_item_item = _parse_matches_type_0_item_item(matches_type_0_item_item_data)

                        matches_type_0_item.append(matches_type_0_item_item)

                    matches_type_0.append(matches_type_0_item)

                return matches_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[list[float]] | None | Unset, data)

        matches = _parse_matches(d.pop("matches", UNSET))

        _metadata = d.pop("metadata", UNSET)
        metadata: SearchHitMetadata | Unset
        if isinstance(_metadata, Unset):
            metadata = UNSET
        else:
            metadata = SearchHitMetadata.from_dict(_metadata)

        verified = d.pop("verified", UNSET)

        search_hit = cls(
            global_score=global_score,
            id=id,
            score=score,
            box=box,
            confidence=confidence,
            inliers=inliers,
            matches=matches,
            metadata=metadata,
            verified=verified,
        )

        search_hit.additional_properties = d
        return search_hit

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
