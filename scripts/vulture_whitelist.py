# What vulture (the dead-code finder `scripts/test` runs over src/) reports as unused but is not.
#
# vulture reads this file, it never runs: each line names something (a bare name, or `_.name`
# for an attribute or method of any class) so that vulture counts it as used. Every entry says
# who uses it. Before adding one, check that the code is really used: grep src/, tests/, the
# templates and the docs, and remember that Litestar handlers, typer commands, msgspec fields,
# Alembic revisions and pytest fixtures are used by name. Code that nothing uses is removed.
#
# Regenerate the candidates with `.venv/bin/vulture src --make-whitelist`.

# --- Alembic reads these module attributes of every revision by name ---------------------------
revision
down_revision
branch_labels
depends_on
upgrade
downgrade  # `alembic downgrade` calls it; `bankhub migrate` only goes up

# --- typer: commands and the root callback are registered by their decorators ------------------
_operator  # cli.py: the root callback, binds tenancy.everything() for every command
apps_create  # `bankhub apps create`
apps_allow_ip  # `bankhub apps allow-ip`
webhooks_rotate  # `bankhub webhooks rotate`
webhooks_list  # `bankhub webhooks list`
webhooks_enable  # `bankhub webhooks enable`
db_create_app_role  # `bankhub db create-app-role`
import_file  # `bankhub import FILE`
rewrap_kek  # `bankhub keys rewrap-kek`
rotate_signing  # `bankhub keys rotate-signing`
list_  # `bankhub keys list`
source_list  # `bankhub signatures source list`
source_add  # `bankhub signatures source add`
source_sync  # `bankhub signatures source sync`
source_remove  # `bankhub signatures source remove`

# --- pydantic-settings reads these by name -----------------------------------------------------
model_config  # config.Settings: where settings come from (BANKHUB_* variables)
_._check_edge  # config.Settings: a model_validator, run on every Settings()
PRODUCTION  # config.Environment: chosen by BANKHUB_ENV=production, never by name in code

# --- SQLAlchemy calls these on its TypeDecorators (db/types.py) ---------------------------------
impl
cache_ok
_.process_bind_param
_.process_result_value
_.load_dialect_impl

# --- asyncio and httpx call these on webhooks/transport.py's protocol and transport -------------
_.connection_made
_.data_received
_.eof_received
_.connection_lost
_.pause_writing
_.resume_writing
_.handle_async_request

# --- other libraries call these by name --------------------------------------------------------
_.dtclient  # ofxtools' OFXClient asks for the request's DTCLIENT; bankhub answers from its clock
worker_app  # supervision.py: granian's factory target, named as a string "module:function"
logger  # security/redact.py: structlog passes every processor (logger, method_name, event_dict)
method_name  # the same structlog processor signature
_.additional_properties  # api/openapi.py: Litestar's OpenAPI Schema field, written to the spec
_.request_body  # customers/routes.py: Litestar's OpenAPI Operation field, written to the spec

# --- wire fields: msgspec Structs encode every field by name -----------------------------------
connect_url  # api/schemas.py: POST /v2/token's answer
activate  # api/schemas.py: PUT /v2/login/activate's answer
deActivate  # api/schemas.py: the seed's spelling of PUT /v2/login/deactivate's answer
granted_at  # api/schemas.py: consent details of GET /v2/login
exported_at  # customers/routes.py: GET /v2/customer/export's answer
replayed  # events/routes.py: POST /v2/event/replay's answer
catch_up  # webhooks/routes.py: re-enabling an endpoint answers what it missed

# --- read by Jinja templates (vulture reads only Python) ---------------------------------------
help  # connectors/base.py: a credential field's help text, shown on the connect page
chart  # dashboard/glance.py: each panel's chart
svg  # usage/charts.py: the chart's markup
_.has_colours  # partners/branding.py: the connect page links the app's stylesheet only then
_.css_url  # partners/branding.py: the stylesheet's URL on the connect page and the preview
last_used_at  # oauth/service.py: the dashboard's OAuth grants page
revoked_reason  # oauth/models.py: the dashboard's OAuth grants page (why a grant ended)
last_sign_in_at  # dashboard/models.py: the team page
latency_us  # requestlog/models.py: a call's time to answer, shown by requests.html
_.alt  # connectors/base.py: a TAN challenge image's text alternative (connect page, code.html)
_.data_url  # connectors/base.py: the challenge image inline on the connect page (code.html)
_.sizes  # dashboard/paging.py: the page sizes a list offers (_pager.html)

# --- columns written for operators (read with SQL, `bankhub audit` and the dashboard) -----------
iban_enc  # accounts/models.py: sealed details, set and read as f"{column}_enc" (sync/engine.py)
number_enc
holder_name_enc
mode_set_by  # partners/models.py: who set the app's sandbox/live mode, and when
mode_set_at
promoted_at  # security/models.py: when a data key became the primary one
started_at  # sync/models.py: a sync run's times
finished_at
last_status_code  # webhooks/models.py: a delivery's last answer
last_error  # webhooks/models.py and logins/models.py: the last failure, for operators

# --- the connector interface: declared for connector authors ------------------------------------
ONE_TIME  # connectors/base.py: FieldKind of a one-time credential field
check_contract  # connectors/testing.py: the contract suite every connector's tests run
sca_approaches  # connectors/xs2a/params.py: a bank's declared SCA approaches (catalogue)

# --- documented interfaces that the dashboard does not use (yet) -------------------------------
api_calls_by_group  # usage/series.py: documented in docs/usage.md; tests/usage read it
webhook_deliveries  # usage/series.py: documented in docs/usage.md
set_outage  # connectors/sandbox/bank.py: the sandbox's outage switch (docs/sandbox.md)
_.loaded  # security/keyring.py: whether the data keys are loaded (readiness)
_.applied  # sync/refresh.py: RefreshOutcome says whether a run lost its lease before applying

# --- seams that tests drive (the product reaches the same code another way) ---------------------
encode_file  # connectors/statement: the credentials' file encoding, for the contract suite
_.invalidate  # events/flags.py: forget a cached switch at once instead of after its TTL
_.run_once  # jobs/runner.py: one pass of every loop, so that tests need no timing
_.listens  # jobs/runner.py: how often a runner (re)started listening; nothing reads it yet
_.from_secret  # security/crypto.py: a Box from a raw secret, for tests and bench/ingest.py
new_kek_text  # security/keyring.py: a fresh key-encryption key, as the operator writes one
uninstall  # security/redact.py: undoes install() between logging tests
CHANGE_COLUMNS  # sync/engine.py: the change log's bulk columns, for tests/db/test_bulk.py
_.account_details  # sync/engine.py: an account's opened details, for tests/security
_.api  # usage/counters.py: count one API call; the request hook inlines it (hot path)
_.shared_store  # app.py: app.state.shared_store, its `unavailable` count for operators

# --- prometheus-client: read from its module when a metric is made -------------------------------
_.ValueClass  # observability/metrics.py sets prometheus_client.values.ValueClass for multiprocess mode

# --- bank registries --------------------------------------------------------------------------------
import_banks  # `bankhub banks import`
disable  # `bankhub banks disable`
gocardless_secret  # `bankhub banks gocardless-secret`
gocardless_import  # `bankhub banks gocardless-import`
OAUTH  # banks/formats.py ScaApproach: a value registry files name (read by value, never by name)
bank_file_schema  # the JSON Schema docs/banks.md shows; tests/banks/test_formats.py keeps them equal
qwac_cert_file  # banks/formats.py BankEntry: a bank's own certificate files, passed on by name (getattr)
qwac_key_file
qwac_key_passphrase_env
qseal_cert_file
qseal_key_file
qseal_key_passphrase_env

# --- eIDAS certificates -------------------------------------------------------------------------------
componentType  # security/eidas.py: pyasn1 reads each ASN.1 type's components from this attribute
xs2a_qwac_cert_file  # security/eidas.py reads the QWAC and QSealC settings by kind (getattr)
xs2a_qwac_key_file
xs2a_qwac_cert
xs2a_qwac_key
xs2a_qwac_key_passphrase
xs2a_qseal_cert_file
xs2a_qseal_key_file
xs2a_qseal_cert
xs2a_qseal_key
xs2a_qseal_key_passphrase

# --- categories: the taxonomy's members are wire values, named by value in category_rules.yaml --
AUTO_AND_TRANSPORT  # categories.Category: read by value from the rules file and app rules
BILLS_AND_UTILITIES
EDUCATION
ENTERTAINMENT
FEES_AND_CHARGES
FOOD_AND_DINING
GIFTS_AND_DONATIONS
HEALTH_AND_FITNESS
INCOME
INVESTMENTS
KIDS
LOANS
PERSONAL_CARE
PETS
SHOPPING
TAXES
TRAVEL

# --- payments ----------------------------------------------------------------------------------
row_factory  # connectors/sandbox/ledger.py: sqlite3 reads the connection's row factory
creditor  # payments.services.PaymentSummary: read by the connect page's payment.html template

# --- sftp: asyncssh calls these overrides of SSHServer and SFTPServer (bankhub.sftp.server) ----
begin_auth  # SSHServer: called by asyncssh as a client starts authenticating
password_auth_supported
kbdint_auth_supported
host_based_auth_supported
public_key_auth_supported
validate_public_key
auth_completed
connection_requested  # SSHServer: port forwarding requests, each refused
server_requested
unix_connection_requested
unix_server_requested
tun_requested
dest_host  # the arguments of the refused requests above, part of asyncssh's signatures
dest_port
orig_host
orig_port
listen_host
listen_port
dest_path
listen_path
realpath  # SFTPServer: the SFTP operations asyncssh dispatches to the server object
lstat
scandir
rmdir
fstat
setstat
lsetstat
fsetstat
fsync
posix_rename
readlink
symlink
statvfs
fstatvfs
unlock
exit

# --- db ------------------------------------------------------------------------------------------
put_nowait  # db/inline_sqlite.py: SQLAlchemy's aiosqlite dialect sets isolation levels by it
_tx  # db/inline_sqlite.py: the same, reached as the connection's _tx
