from services.sla.app import runtime

runtime.run()
