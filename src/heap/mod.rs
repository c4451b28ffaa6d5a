//! The heap layer: memory from the operating system, cut into spans and
//! objects.
//!
//! Owns: mappers (`mapper`: reserve address space, back it with memory;
//! the built-in `anonymous_mapper` and `file_mapper`; the
//! `mapper_registry` of named mappers),
//! the internal arena for slitter's own records (`arena`), the mill that
//! carves chunks into spans (`mill`), the press that bump-allocates
//! objects of one class out of spans (`press`), and the large blocks of
//! the malloc API (`large`).
//!
//! May call: `sys`, `layout`. Files, bottom up: mapper, anonymous_mapper,
//! file_mapper, mapper_registry, arena, mill, press,
//! large.

pub(crate) mod anonymous_mapper;
pub(crate) mod arena;
pub(crate) mod file_mapper;
pub(crate) mod large;
pub(crate) mod mapper;
pub(crate) mod mapper_registry;
pub(crate) mod mill;
pub(crate) mod press;
