//! The heap layer: memory from the operating system, cut into spans and
//! objects.
//!
//! Owns: mappers (`mapper`: reserve address space, back it with memory;
//! the built-in `anonymous_mapper` and `file_mapper`; the
//! `mapper_registry` of named mappers),
//! the internal arena for slitter's own records (`arena`), the mill that
//! carves chunks into spans and purges them (`mill`), the lists of spans
//! (`span_list`), the decay clock of wholly free spans (`decay`), the
//! press that keeps the spans of one class and the objects they hold free
//! (`press`), and the large blocks of the malloc API (`large`).
//!
//! May call: `sys`, `layout`. Files, bottom up: mapper, anonymous_mapper,
//! file_mapper, mapper_registry, arena, mill, span_list, decay, press,
//! large.

pub(crate) mod anonymous_mapper;
pub(crate) mod arena;
pub(crate) mod decay;
pub(crate) mod file_mapper;
pub(crate) mod large;
pub(crate) mod mapper;
pub(crate) mod mapper_registry;
pub(crate) mod mill;
pub(crate) mod press;
pub(crate) mod span_list;
