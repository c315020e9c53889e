from . import test_google_sign_in
