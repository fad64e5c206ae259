from services.followup.app import runtime

runtime.run()
