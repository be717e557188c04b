"""Paddler's wire types as pydantic models, serialized exactly as Paddler's serde types are.

Import from the submodules (``paddler_tui.protocol.inference_socket`` and so on); this package
re-exports nothing so that importing one type does not build every schema.
"""
