"""Fleet model -> {relative path: bytes}; nothing here touches the file system."""
