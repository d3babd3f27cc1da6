from app.core.errors import ConflictError, NotFoundError


class ItemNotFoundError(NotFoundError):
    code = "item_not_found"

    def __init__(self) -> None:
        super().__init__("No item has this id.")


class ItemNameTakenError(ConflictError):
    code = "item_name_taken"

    def __init__(self) -> None:
        super().__init__("An item with this name already exists.")
