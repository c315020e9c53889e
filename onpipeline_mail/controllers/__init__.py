from . import sign_in_callback
