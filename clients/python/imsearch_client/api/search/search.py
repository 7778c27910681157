from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.body_search import BodySearch
from ...models.error_body import ErrorBody
from ...models.search_response import SearchResponse
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: BodySearch,
    k: int | None | Unset = UNSET,
    rerank: None | str | Unset = UNSET,
    m: int | None | Unset = UNSET,
    min_inliers: int | None | Unset = UNSET,
    min_confidence: float | None | Unset = UNSET,
    nprobe: int | None | Unset = UNSET,
    ef_search: int | None | Unset = UNSET,
    k_factor: float | None | Unset = UNSET,
    matches: bool | Unset = False,
    filter_: str | Unset = "",
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    params: dict[str, Any] = {}

    json_k: int | None | Unset
    if isinstance(k, Unset):
        json_k = UNSET
    else:
        json_k = k
    params["k"] = json_k

    json_rerank: None | str | Unset
    if isinstance(rerank, Unset):
        json_rerank = UNSET
    else:
        json_rerank = rerank
    params["rerank"] = json_rerank

    json_m: int | None | Unset
    if isinstance(m, Unset):
        json_m = UNSET
    else:
        json_m = m
    params["m"] = json_m

    json_min_inliers: int | None | Unset
    if isinstance(min_inliers, Unset):
        json_min_inliers = UNSET
    else:
        json_min_inliers = min_inliers
    params["min_inliers"] = json_min_inliers

    json_min_confidence: float | None | Unset
    if isinstance(min_confidence, Unset):
        json_min_confidence = UNSET
    else:
        json_min_confidence = min_confidence
    params["min_confidence"] = json_min_confidence

    json_nprobe: int | None | Unset
    if isinstance(nprobe, Unset):
        json_nprobe = UNSET
    else:
        json_nprobe = nprobe
    params["nprobe"] = json_nprobe

    json_ef_search: int | None | Unset
    if isinstance(ef_search, Unset):
        json_ef_search = UNSET
    else:
        json_ef_search = ef_search
    params["ef_search"] = json_ef_search

    json_k_factor: float | None | Unset
    if isinstance(k_factor, Unset):
        json_k_factor = UNSET
    else:
        json_k_factor = k_factor
    params["k_factor"] = json_k_factor

    params["matches"] = matches

    params["filter"] = filter_

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/search",
        "params": params,
    }

    _kwargs["files"] = body.to_multipart()

    headers["Content-Type"] = "multipart/form-data; boundary=+++"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | SearchResponse | None:
    if response.status_code == 200:
        response_200 = SearchResponse.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

    if response.status_code == 413:
        response_413 = ErrorBody.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = ErrorBody.from_dict(response.json())

        return response_415

    if response.status_code == 422:
        response_422 = ErrorBody.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = ErrorBody.from_dict(response.json())

        return response_429

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | SearchResponse]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: BodySearch,
    k: int | None | Unset = UNSET,
    rerank: None | str | Unset = UNSET,
    m: int | None | Unset = UNSET,
    min_inliers: int | None | Unset = UNSET,
    min_confidence: float | None | Unset = UNSET,
    nprobe: int | None | Unset = UNSET,
    ef_search: int | None | Unset = UNSET,
    k_factor: float | None | Unset = UNSET,
    matches: bool | Unset = False,
    filter_: str | Unset = "",
) -> Response[ErrorBody | SearchResponse]:
    """Search

    Args:
        k (int | None | Unset): How many results.
        rerank (None | str | Unset): none, or qe+dba+diffusion+spatial
        m (int | None | Unset): Candidates verified.
        min_inliers (int | None | Unset): Inliers a match needs at least.
        min_confidence (float | None | Unset): Confidence a match needs (default: calibrated).
        nprobe (int | None | Unset):
        ef_search (int | None | Unset):
        k_factor (float | None | Unset):
        matches (bool | Unset): Return verified keypoint pairs. Default: False.
        filter_ (str | Unset): Only results whose metadata satisfy this JSON filter, e.g.
            {"brand": "acme", "year": {"gte": 1990}}: equality, in/nin, ne, gt/gte/lt/lte, exists,
            and/or/not (docs/API.md). Default: ''.
        body (BodySearch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | SearchResponse]
    """

    kwargs = _get_kwargs(
        body=body,
        k=k,
        rerank=rerank,
        m=m,
        min_inliers=min_inliers,
        min_confidence=min_confidence,
        nprobe=nprobe,
        ef_search=ef_search,
        k_factor=k_factor,
        matches=matches,
        filter_=filter_,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: BodySearch,
    k: int | None | Unset = UNSET,
    rerank: None | str | Unset = UNSET,
    m: int | None | Unset = UNSET,
    min_inliers: int | None | Unset = UNSET,
    min_confidence: float | None | Unset = UNSET,
    nprobe: int | None | Unset = UNSET,
    ef_search: int | None | Unset = UNSET,
    k_factor: float | None | Unset = UNSET,
    matches: bool | Unset = False,
    filter_: str | Unset = "",
) -> ErrorBody | SearchResponse | None:
    """Search

    Args:
        k (int | None | Unset): How many results.
        rerank (None | str | Unset): none, or qe+dba+diffusion+spatial
        m (int | None | Unset): Candidates verified.
        min_inliers (int | None | Unset): Inliers a match needs at least.
        min_confidence (float | None | Unset): Confidence a match needs (default: calibrated).
        nprobe (int | None | Unset):
        ef_search (int | None | Unset):
        k_factor (float | None | Unset):
        matches (bool | Unset): Return verified keypoint pairs. Default: False.
        filter_ (str | Unset): Only results whose metadata satisfy this JSON filter, e.g.
            {"brand": "acme", "year": {"gte": 1990}}: equality, in/nin, ne, gt/gte/lt/lte, exists,
            and/or/not (docs/API.md). Default: ''.
        body (BodySearch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | SearchResponse
    """

    return sync_detailed(
        client=client,
        body=body,
        k=k,
        rerank=rerank,
        m=m,
        min_inliers=min_inliers,
        min_confidence=min_confidence,
        nprobe=nprobe,
        ef_search=ef_search,
        k_factor=k_factor,
        matches=matches,
        filter_=filter_,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: BodySearch,
    k: int | None | Unset = UNSET,
    rerank: None | str | Unset = UNSET,
    m: int | None | Unset = UNSET,
    min_inliers: int | None | Unset = UNSET,
    min_confidence: float | None | Unset = UNSET,
    nprobe: int | None | Unset = UNSET,
    ef_search: int | None | Unset = UNSET,
    k_factor: float | None | Unset = UNSET,
    matches: bool | Unset = False,
    filter_: str | Unset = "",
) -> Response[ErrorBody | SearchResponse]:
    """Search

    Args:
        k (int | None | Unset): How many results.
        rerank (None | str | Unset): none, or qe+dba+diffusion+spatial
        m (int | None | Unset): Candidates verified.
        min_inliers (int | None | Unset): Inliers a match needs at least.
        min_confidence (float | None | Unset): Confidence a match needs (default: calibrated).
        nprobe (int | None | Unset):
        ef_search (int | None | Unset):
        k_factor (float | None | Unset):
        matches (bool | Unset): Return verified keypoint pairs. Default: False.
        filter_ (str | Unset): Only results whose metadata satisfy this JSON filter, e.g.
            {"brand": "acme", "year": {"gte": 1990}}: equality, in/nin, ne, gt/gte/lt/lte, exists,
            and/or/not (docs/API.md). Default: ''.
        body (BodySearch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | SearchResponse]
    """

    kwargs = _get_kwargs(
        body=body,
        k=k,
        rerank=rerank,
        m=m,
        min_inliers=min_inliers,
        min_confidence=min_confidence,
        nprobe=nprobe,
        ef_search=ef_search,
        k_factor=k_factor,
        matches=matches,
        filter_=filter_,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: BodySearch,
    k: int | None | Unset = UNSET,
    rerank: None | str | Unset = UNSET,
    m: int | None | Unset = UNSET,
    min_inliers: int | None | Unset = UNSET,
    min_confidence: float | None | Unset = UNSET,
    nprobe: int | None | Unset = UNSET,
    ef_search: int | None | Unset = UNSET,
    k_factor: float | None | Unset = UNSET,
    matches: bool | Unset = False,
    filter_: str | Unset = "",
) -> ErrorBody | SearchResponse | None:
    """Search

    Args:
        k (int | None | Unset): How many results.
        rerank (None | str | Unset): none, or qe+dba+diffusion+spatial
        m (int | None | Unset): Candidates verified.
        min_inliers (int | None | Unset): Inliers a match needs at least.
        min_confidence (float | None | Unset): Confidence a match needs (default: calibrated).
        nprobe (int | None | Unset):
        ef_search (int | None | Unset):
        k_factor (float | None | Unset):
        matches (bool | Unset): Return verified keypoint pairs. Default: False.
        filter_ (str | Unset): Only results whose metadata satisfy this JSON filter, e.g.
            {"brand": "acme", "year": {"gte": 1990}}: equality, in/nin, ne, gt/gte/lt/lte, exists,
            and/or/not (docs/API.md). Default: ''.
        body (BodySearch):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | SearchResponse
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            k=k,
            rerank=rerank,
            m=m,
            min_inliers=min_inliers,
            min_confidence=min_confidence,
            nprobe=nprobe,
            ef_search=ef_search,
            k_factor=k_factor,
            matches=matches,
            filter_=filter_,
        )
    ).parsed
