"""HTTP routes of the posts service: parse, call the service, shape the response.

Order matters: the fixed paths (``/feed``, ``/notifications``, ``/users/...``,
``/follows/...``) are registered before ``/{post_id}`` so that they are never read as a post id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.routing import APIRoute

from agora.runtime import parts_of
from agora.security.dependencies import CurrentPrincipal
from agora.security.strings import Text
from agora.services.posts.pagination import DEFAULT_LIMIT, MAX_LIMIT
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
# Not length-limited here: every bad cursor, too long included, is a 400 invalid_cursor.
PageCursor = Annotated[
    Text | None, Query(description="`next_cursor` of the previous page; omit for the first page.")
]

router = APIRouter(prefix="/api/v1/posts", tags=["posts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a post (plain text: markup is removed, 1-500 characters remain)",
)
async def create_post(
    body: PostCreate, principal: CurrentPrincipal, service: Service
) -> PostPublic:
    return await service.create_post(principal=principal, content=body.content)


@router.get("/feed", summary="Home feed: own posts and those of followed users, newest first")
async def feed(
    principal: CurrentPrincipal,
    service: Service,
    limit: Limit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> PostPage:
    return await service.feed(principal=principal, limit=limit, cursor=cursor)


@router.get("/notifications", summary="The caller's notifications (follows, likes), newest first")
async def notifications(
    principal: CurrentPrincipal,
    service: Service,
    limit: Limit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> NotificationPage:
    return await service.notifications(principal=principal, limit=limit, cursor=cursor)


@router.get("/users/{user_id}", summary="One user's posts, newest first (404 for no such user)")
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
)
async def follow(user_id: Text, principal: CurrentPrincipal, service: Service) -> FollowState:
    return await service.set_follow(principal=principal, user_id=user_id, following=True)


@router.delete(
    "/follows/{user_id}",
    summary="Unfollow a user (idempotent): 200 with {user_id, following: false}",
)
async def unfollow(user_id: Text, principal: CurrentPrincipal, service: Service) -> FollowState:
    return await service.set_follow(principal=principal, user_id=user_id, following=False)


@router.get("/{post_id}", summary="One post")
async def get_post(post_id: Text, principal: CurrentPrincipal, service: Service) -> PostPublic:
    return await service.get_post(principal=principal, post_id=post_id)


@router.delete(
    "/{post_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a post (only its author; 403 for anyone else)",
)
async def delete_post(post_id: Text, principal: CurrentPrincipal, service: Service) -> Response:
    await service.delete_post(principal=principal, post_id=post_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{post_id}/like",
    summary="Like a post (idempotent): 200 with the post, liked_by_me true, current like_count",
)
async def like(post_id: Text, principal: CurrentPrincipal, service: Service) -> PostPublic:
    return await service.set_like(principal=principal, post_id=post_id, liked=True)


@router.delete(
    "/{post_id}/like",
    summary="Unlike a post (idempotent): 200 with the post, liked_by_me false, current like_count",
)
async def unlike(post_id: Text, principal: CurrentPrincipal, service: Service) -> PostPublic:
    return await service.set_like(principal=principal, post_id=post_id, liked=False)


def route_of(endpoint: Callable[..., Awaitable[object]]) -> APIRoute:
    """The route of ``endpoint`` in this router (a shortcut answers in its name)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint is endpoint:
            return route
    raise LookupError(f"{endpoint.__name__} is not a route of {router.prefix}")
