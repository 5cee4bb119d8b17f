"""The order's search attributes (SPEC §5.5), defined once: the workflow upserts these keys, the
dev server and the demo register them under these names and types. None carries PII."""

from __future__ import annotations

from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

SA_STAGE = SearchAttributeKey.for_keyword("OrderStage")
SA_WAITING = SearchAttributeKey.for_keyword("WaitingFor")
SA_FLAGS = SearchAttributeKey.for_keyword_list("OrderFlags")
SA_SKUS = SearchAttributeKey.for_keyword_list("OrderSkus")
SA_WAREHOUSE = SearchAttributeKey.for_keyword("Warehouse")
SA_TOTAL = SearchAttributeKey.for_float("OrderTotal")
SA_PLATFORM = SearchAttributeKey.for_keyword("Platform")
SEARCH_ATTRIBUTES = (SA_STAGE, SA_WAITING, SA_FLAGS, SA_SKUS, SA_WAREHOUSE, SA_TOTAL, SA_PLATFORM)

_TYPE_NAMES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
}
# name → the type as the Temporal CLI and the operator service spell it ("Keyword", ...)
SEARCH_ATTRIBUTE_TYPES = {key.name: _TYPE_NAMES[key.indexed_value_type] for key in SEARCH_ATTRIBUTES}
