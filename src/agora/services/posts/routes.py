"""HTTP routes of the posts service: parse, call the service, shape the response.

Order matters: the fixed paths (``/feed``, ``/notifications``, ``/users/...``,
``/follows/...``) are registered before ``/{post_id}`` so that they are never read as a post id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.routing import APIRoute
from pydantic import WithJsonSchema

from agora.openapi_errors import error_responses
from agora.runtime import parts_of
from agora.security.dependencies import CurrentPrincipal
from agora.security.strings import Text
from agora.services.posts.pagination import (
    CURSOR_PATTERN,
    DEFAULT_LIMIT,
    MAX_CURSOR_LENGTH,
    MAX_LIMIT,
)
from agora.services.posts.parts import PostsParts
from agora.services.posts.schemas import (
    FollowState,
    NotificationPage,
    PostCreate,
    PostPage,
    PostPublic,
)
from agora.services.posts.service import PostsService


# Dependencies are async on purpose: FastAPI runs a plain ``def`` dependency in the thread
# pool, a thread hand-off per request for what is an attribute read.
async def _service(request: Request) -> PostsService:
    return parts_of(request, PostsParts).posts


Service = Annotated[PostsService, Depends(_service)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1-100).")]
# Not length-limited by the model: every bad cursor, too long included, is a 400
# invalid_cursor. The description states the format, so a client can tell a cursor it mangled.
CursorText = Annotated[
    Text,
    WithJsonSchema({"type": "string", "pattern": CURSOR_PATTERN, "maxLength": MAX_CURSOR_LENGTH}),
]
PageCursor = Annotated[
    CursorText | None,
    Query(
        description="`next_cursor` of the previous page; omit for the first page. Opaque: "
        "unpadded base64url, at most 200 characters; one this service did not issue is "
        "answered 400 `invalid_cursor`."
    ),
]

# What the routes raise themselves; the statuses every route shares are added by
# ``agora.openapi_errors.describe_errors``.
_PAGE = error_responses(
    400,
    descriptions={
        400: "The cursor is not one this service issued (`invalid_cursor`), or "
        "`ambiguous_credentials`"
    },
)
_NO_POST = error_responses(404, descriptions={404: "No such post (`not_found`)"})
_NO_USER = error_responses(404, descriptions={404: "No such user (`not_found`)"})
_FOLLOW = error_responses(
    404,
    422,
    descriptions={
        404: "No such user (`not_found`)",
        422: "Following oneself (`cannot_follow_self`), or an invalid parameter "
        "(`validation_error`)",
    },
)

router = APIRouter(prefix="/api/v1/posts", tags=["posts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a post (plain text: markup is removed, 1-500 characters remain)",
    # The author's account was deleted while the token is still valid.
    responses=_NO_USER,
)
async def create_post(
    body: PostCreate, principal: CurrentPrincipal, service: Service
) -> PostPublic:
    return await service.create_post(principal=principal, content=body.content)


@router.get(
    "/feed",
    summary="Home feed: own posts and those of followed users, newest first",
    responses=_PAGE,
)
async def feed(
    principal: CurrentPrincipal,
    service: Service,
    limit: Limit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> PostPage:
    return await service.feed(principal=principal, limit=limit, cursor=cursor)


@router.get(
    "/notifications",
    summary="The caller's notifications (follows, likes), newest first",
    responses=_PAGE,
)
async def notifications(
    principal: CurrentPrincipal,
    service: Service,
    limit: Limit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> NotificationPage:
    return await service.notifications(principal=principal, limit=limit, cursor=cursor)


@router.get(
    "/users/{user_id}",
    summary="One user's posts, newest first (404 for no such user)",
    responses={**_PAGE, **_NO_USER},
)
async def user_posts(
    user_id: Text,
    principal: CurrentPrincipal,
    service: Service,
    limit: Limit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> PostPage:
    return await service.user_posts(
        principal=principal, user_id=user_id, limit=limit, cursor=cursor
    )


@router.put(
    "/follows/{user_id}",
    summary="Follow a user (idempotent): 200 with {user_id, following: true}",
    responses=_FOLLOW,
)
async def follow(user_id: Text, principal: CurrentPrincipal, service: Service) -> FollowState:
    return await service.set_follow(principal=principal, user_id=user_id, following=True)


@router.delete(
    "/follows/{user_id}",
    summary="Unfollow a user (idempotent): 200 with {user_id, following: false}",
    responses=_FOLLOW,
)
async def unfollow(user_id: Text, principal: CurrentPrincipal, service: Service) -> FollowState:
    return await service.set_follow(principal=principal, user_id=user_id, following=False)


@router.get("/{post_id}", summary="One post", responses=_NO_POST)
async def get_post(post_id: Text, principal: CurrentPrincipal, service: Service) -> PostPublic:
    return await service.get_post(principal=principal, post_id=post_id)


@router.delete(
    "/{post_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a post (only its author; 403 for anyone else)",
    responses={
        **_NO_POST,
        **error_responses(403, descriptions={403: "Not the post's author (`forbidden`)"}),
    },
)
async def delete_post(post_id: Text, principal: CurrentPrincipal, service: Service) -> Response:
    await service.delete_post(principal=principal, post_id=post_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{post_id}/like",
    summary="Like a post (idempotent): 200 with the post, liked_by_me true, current like_count",
    responses=_NO_POST,
)
async def like(post_id: Text, principal: CurrentPrincipal, service: Service) -> PostPublic:
    return await service.set_like(principal=principal, post_id=post_id, liked=True)


@router.delete(
    "/{post_id}/like",
    summary="Unlike a post (idempotent): 200 with the post, liked_by_me false, current like_count",
    responses=_NO_POST,
)
async def unlike(post_id: Text, principal: CurrentPrincipal, service: Service) -> PostPublic:
    return await service.set_like(principal=principal, post_id=post_id, liked=False)


def route_of(endpoint: Callable[..., Awaitable[object]]) -> APIRoute:
    """The route of ``endpoint`` in this router (a shortcut answers in its name)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint is endpoint:
            return route
    raise LookupError(f"{endpoint.__name__} is not a route of {router.prefix}")
