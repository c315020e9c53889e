from . import onpipeline_mail_provider
from . import onpipeline_mailbox
from . import onpipeline_mailbox_folder
from . import crm_team
from . import res_users
from . import res_config_settings
