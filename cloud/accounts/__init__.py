"""Local users of the web app: who they are, their role, their hashed password."""

from cloud.accounts.settings import AccountSettings
from cloud.accounts.users import (
    AccountError,
    UserView,
    add_user,
    authenticate,
    get_active_user,
    list_users,
    role_allows,
    set_disabled,
)

__all__ = [
    "AccountError",
    "AccountSettings",
    "UserView",
    "add_user",
    "authenticate",
    "get_active_user",
    "list_users",
    "role_allows",
    "set_disabled",
]
