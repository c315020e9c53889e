from . import test_mailbox
from . import test_mailbox_access
from . import test_folders
from . import test_send_test_email
from . import test_sync
from . import test_linking
from . import test_sending
from . import test_mailbox_form
