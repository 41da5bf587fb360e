"""A FastAPI app for the end-to-end suite: JSON, path parameters, uploads, streaming, background tasks,
and a lifespan that hands state to every request."""

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from e2e_record import record
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    record("fastapi-startup")
    yield {"greeting": "hello from the fastapi lifespan"}
    record("fastapi-shutdown")


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item) -> dict[str, Any]:
    return {"name": item.name.upper(), "price_with_tax": round(item.price * 1.25, 2)}


@app.post("/upload")
async def upload(request: Request) -> dict[str, Any]:
    body = await request.body()
    return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@app.get("/stream")
async def stream(lines: int = 5) -> StreamingResponse:
    async def generate() -> AsyncIterator[bytes]:
        for i in range(lines):
            yield f"line {i}\n".encode()
            await asyncio.sleep(0.01)

    return StreamingResponse(generate(), media_type="text/plain")


@app.post("/background")
async def background(name: str, tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(record, f"fastapi-background-{name}", "ran after the response")
    return {"scheduled": name}


@app.get("/state")
async def state(request: Request) -> dict[str, str]:
    return {"greeting": request.state.greeting}
