from contextlib import asynccontextmanager

from fastapi import FastAPI

state = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Runs once, during Lambda INIT: open pools and load models here, not per request.
    state["ready"] = True
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def index():
    return {"hello": "from FastAPI on Lambda", "ready": state.get("ready", False)}


@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}
