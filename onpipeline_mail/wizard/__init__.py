from . import onpipeline_mailbox_test_email
from . import onpipeline_mail_link_wizard
from . import mail_compose_message
from . import mail_resend_message
from . import onpipeline_mailbox_delete
