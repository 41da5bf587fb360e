"""FastAPI bench app for (g): a path parameter, a query parameter and a JSON answer, the smallest thing
a FastAPI view does in production. Needs fastapi (the project's test extra, and the peers' venv)."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, object]:
    return {"item_id": item_id, "q": q}
