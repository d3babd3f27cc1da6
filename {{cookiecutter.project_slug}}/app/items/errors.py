from app.core.errors import ConflictError, ForbiddenError, NotFoundError


class ItemNotFoundError(NotFoundError):
    code = "item_not_found"

    def __init__(self) -> None:
        super().__init__("No item has this id.")


class ItemNameTakenError(ConflictError):
    code = "item_name_taken"

    def __init__(self) -> None:
        super().__init__("You already have an item with this name.")


class NotItemOwnerError(ForbiddenError):
    code = "not_item_owner"

    def __init__(self) -> None:
        super().__init__("Only the item's owner or an admin may see or change it.")
