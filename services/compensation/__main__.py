from services.compensation.app import runtime

runtime.run()
