"""The cluster's live state, from the monitor socket or, against Paddler, its SSE streams."""
