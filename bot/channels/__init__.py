"""Gateway channels: WeChat Official Account and WeCom callbacks, verified and parsed."""
