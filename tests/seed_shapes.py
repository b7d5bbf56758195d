"""The seed's response shapes (key sets), shared by the API and the browser tests."""

SERVICE_KEYS = frozenset(
    {
        "id",
        "name",
        "provider",
        "media_path",
        "cover_file_name",
        "logo_file_name",
        "color",
        "type",
        "country_code",
        "has_balance",
        "call_to_action",
    }
)
ACCOUNT_KEYS = frozenset({"id", "original_id", "login_id", "name", "balance", "currency", "type"})
TRANSACTION_KEYS = frozenset(
    {"id", "original_id", "date", "amount", "currency", "description", "category", "meta"}
)
