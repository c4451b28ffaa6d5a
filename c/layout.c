/*
 * The C side of the layout cross-check: one function per constant, called
 * once by src/layout/constants.rs at initialisation.
 */
#include "layout.h"

size_t slitter_c_data_alignment(void) { return SLITTER_DATA_ALIGNMENT; }
size_t slitter_c_guard_page_size(void) { return SLITTER_GUARD_PAGE_SIZE; }
size_t slitter_c_records_size(void) { return SLITTER_RECORDS_SIZE; }
size_t slitter_c_metadata_size(void) { return SLITTER_METADATA_SIZE; }
size_t slitter_c_granule(void) { return SLITTER_GRANULE; }
size_t slitter_c_span_alignment(void) { return SLITTER_SPAN_ALIGNMENT; }
size_t slitter_c_span_metadata_size(void) { return sizeof(struct slitter_span_record); }
size_t slitter_c_magazine_size(void) { return SLITTER_MAGAZINE_SIZE; }
size_t slitter_c_magazine_bytes(void) { return sizeof(struct slitter_magazine); }
size_t slitter_c_max_classes(void) { return SLITTER_MAX_CLASSES; }
size_t slitter_c_thread_state_size(void) { return sizeof(struct slitter_thread_state); }
